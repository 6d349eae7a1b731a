"""benchmark: score a model on lm-eval tasks, as Olive's `olive benchmark` does (an LMEvaluator workflow without
passes). The engine evaluates the input model in its worker process and writes the scores into -o: metrics.json
(ModelMill's scores), lm_eval/input.json (lm-eval's own results), metrics.md, report.html and the manifest.

Task data is read offline (evaluate/lm_eval_bridge.py): a local task YAML (`--tasks my_task.yaml`, or its folder with
`--include_path`), or a dataset already in the Hugging Face cache; a task whose data is only on the Hub stops with
the dataset to provide.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from modelmill.commands.common import add_azure_flags, add_model_source_flags, add_telemetry_flag


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-m", "--model_name_or_path", dest="model", default=None,
                        help="output folder (ORT GenAI or ONNX), .onnx file, Hugging Face folder, or sample:NAME")
    parser.add_argument("-t", "--task", default=None, help="model task (default: inferred)")
    parser.add_argument("--trust_remote_code", action="store_true", help="allow custom model code from the folder")
    add_model_source_flags(parser)
    parser.add_argument("-o", "--output_path", default="onnx-model",
                        help="folder for the scores (default onnx-model, as Olive)")
    parser.add_argument("--tasks", nargs="*", required=True,
                        help="lm-eval task names or task YAML files, e.g. arc_easy or my_tasks/qa.yaml (offline: the "
                             "task's data must be local)")
    parser.add_argument("--include_path", action="append", default=None, metavar="DIR",
                        help="a folder of lm-eval task YAML files (repeatable); relative data_files are read from "
                             "each YAML's folder")
    parser.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument("--batch_size", type=int, default=1,
                        help="requests per forward pass (batched for Hugging Face models; ONNX runs them one by one)")
    parser.add_argument("--max_length", type=int, default=1024,
                        help="longest sequence, in tokens (context + continuation; at most the model's context)")
    parser.add_argument("--limit", type=float, default=1,
                        help="samples per task: a count, or a fraction of the task when below 1; 0 = the whole task "
                             "(default 1, as Olive)")
    parser.add_argument("--num_fewshot", type=int, default=None, help="few-shot examples per sample (default: the "
                                                                      "task's own)")
    parser.add_argument("--backend", default="auto", choices=["auto", "ort", "ortgenai"],
                        help="how an ONNX model is run: onnxruntime or onnxruntime-genai (auto: ortgenai for a folder "
                             "with genai_config.json, else ort)")
    parser.add_argument("--log_level", type=int, default=3, choices=range(5),
                        help="0 debug, 1 info (lm-eval's progress), 2 warning, 3 error (default), 4 critical")
    parser.add_argument("--save_config_file", action="store_true",
                        help="write the generated config to the output folder's parent")
    parser.add_argument("--dry_run", action="store_true", help="print the plan and the config, then stop")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing output folder even if ModelMill did not write it")
    parser.add_argument("--events", default=None, metavar="FILE", help="write every run event as JSON lines to FILE")
    add_azure_flags(parser)
    add_telemetry_flag(parser)


def run(args: argparse.Namespace) -> int:
    from modelmill.commands import common
    from modelmill.commands.driver import run_generated

    common.check_common(args)
    if not args.model:
        common.refuse("-m", "benchmark needs a model: -m FOLDER (an output folder, an .onnx file or a Hugging Face "
                      "folder)", "pass -m, e.g. -m models/smollm2-int4")
    common.resolve_test_model(args)
    config = build_config(args)
    code = run_generated(config, args)
    if code == 0 and not args.dry_run:
        print_summary(Path(config["output_dir"]))
    return code


def build_config(args: argparse.Namespace) -> dict[str, Any]:
    """Olive's benchmark config (olive/cli/benchmark.py TEMPLATE): the input model and an LMEvaluator, no passes."""
    from modelmill.commands import common
    from modelmill.commands.driver import local_model
    from modelmill.paths import default_cache_dir

    tasks = [_task(task) for task in args.tasks or []]
    if not tasks:
        common.refuse("--tasks", "--tasks names no task", "give lm-eval task names or task YAML files, e.g. "
                      "--tasks my_tasks/qa.yaml (docs/evaluate.md)")
    entry, kind = common.input_model_for(args.model, args.task, args.trust_remote_code,
                                         getattr(args, "adapter_path", None))
    if args.backend != "auto":
        if kind != "onnx":
            common.refuse("--backend", "--backend is only for ONNX input models (as in Olive); a Hugging Face folder "
                          "is run by transformers", "drop --backend")
        folder = local_model(args.model)
        folder = folder if folder.is_dir() else folder.parent
        if args.backend == "ortgenai" and not (folder / "genai_config.json").exists():
            common.refuse("--backend", f"--backend ortgenai needs an ORT GenAI folder, and {folder} has no "
                          "genai_config.json", "use --backend ort (onnxruntime) for a plain ONNX model")
    if args.device == "gpu" and kind == "hf":
        _check_torch_cuda()
    evaluator: dict[str, Any] = {"type": "LMEvaluator", "tasks": tasks, "batch_size": args.batch_size,
                                 "max_length": args.max_length, "device": args.device, "limit": args.limit}
    if args.backend != "auto":
        evaluator["model_class"] = args.backend
    if args.include_path:
        evaluator["include_path"] = [str(Path(folder).expanduser().resolve()) for folder in args.include_path]
    if args.num_fewshot is not None:
        evaluator["num_fewshot"] = args.num_fewshot
    # A Hugging Face model runs on torch: its accelerator stays cpu/CPUExecutionProvider (onnxruntime is not used),
    # and the evaluator's device gpu puts it on torch's CUDA device.
    onnx_gpu = args.device == "gpu" and kind == "onnx"
    return {"input_model": entry,
            "systems": common.local_system("gpu" if onnx_gpu else "cpu",
                                           "CUDAExecutionProvider" if onnx_gpu else "CPUExecutionProvider"),
            "evaluators": {"evaluator": evaluator}, "evaluator": "evaluator",
            "host": "local_system", "target": "local_system", "output_dir": args.output_path,
            "cache_dir": str(default_cache_dir()), "log_severity_level": args.log_level}


def _task(value: str) -> str:
    """A task name as given; a task YAML file as an absolute path (the saved config then works from anywhere)."""
    if value.endswith((".yaml", ".yml")):
        path = Path(value).expanduser()
        if not path.is_file():
            from modelmill.commands.common import refuse

            refuse("--tasks", f"task file {value} does not exist", "give the path of an lm-eval task YAML")
        return str(path.resolve())
    return value


def _check_torch_cuda() -> None:
    import torch

    if not torch.cuda.is_available():
        from modelmill.commands.common import refuse

        refuse("--device", "gpu: torch here has no CUDA device to run the Hugging Face model on",
               "use --device cpu, or a machine with a GPU and a CUDA build of torch")


def print_summary(output_dir: Path) -> None:
    """The scores as a table on stdout: task, metric, value ± stderr, samples (from lm_eval/input.json)."""
    import json
    import sys

    from rich.console import Console
    from rich.table import Table

    from modelmill.evaluate.lm_eval_bridge import summary_rows

    results_file = output_dir / "lm_eval" / "input.json"
    if not results_file.exists():
        return
    table = Table("task", "metric", "value", "± stderr", "samples", title=f"lm-eval scores ({output_dir})")
    for task, metric, value, stderr, count in summary_rows(json.loads(results_file.read_text())):
        table.add_row(task, metric, f"{value:.4f}", f"{stderr:.4f}" if stderr is not None else "–",
                      str(count) if count is not None else "")
    Console(file=sys.stdout).print(table)
    print(f"scores: {output_dir / 'metrics.json'}, lm-eval results: {results_file}", file=sys.stderr)
