"""Peak memory of loading a model and running it once, measured in a fresh child process.

The child (``python -m modelmill.evaluate.memory <spec-json>``) loads the model, runs one inference
(ONNX: a forward pass with generated inputs; genai: a short greedy generation; HF: a forward pass, or
a short generate for causal LMs) and reports its own peak resident set size: ``VmHWM`` from
``/proc/self/status`` on Linux, ``ru_maxrss`` on macOS, psutil's peak working set on Windows. Not
``ru_maxrss`` on Linux: it survives ``execve`` (the kernel keeps the larger of the old and new image's peak),
so a child started by a process holding 1 GiB read at least 1 GiB. The parent's memory is not part of
the number; the child's Python interpreter and imported runtimes are.

metric_config: ``batch_size`` (1), ``sequence_length`` (128; the prompt length for generation),
``new_tokens`` (8, generation only), ``timeout_s`` (600).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from modelmill.engine.model import ModelRef
from modelmill.evaluate.runtime import EvaluationError, int_option
from modelmill.remote_code import is_trusted

DEFAULT_NEW_TOKENS = 8


def peak_memory_mb(model: ModelRef, metric_config: dict[str, Any] | None = None, *,
                   execution_provider: str = "CPUExecutionProvider") -> float:
    config = metric_config or {}
    spec = {"model": model.to_json(), "execution_provider": execution_provider,
            "batch_size": int_option(config, "batch_size", 1),
            "sequence_length": int_option(config, "sequence_length", 128),
            "new_tokens": int_option(config, "new_tokens", DEFAULT_NEW_TOKENS)}
    import modelmill

    package_root = str(Path(modelmill.__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([package_root, *filter(None, [env.get("PYTHONPATH")])])
    command = [sys.executable, "-m", "modelmill.evaluate.memory", json.dumps(spec, default=str)]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True,
                              timeout=float(config.get("timeout_s") or 600))
    except subprocess.TimeoutExpired as exc:
        raise EvaluationError(f"memory measurement of {model.path} timed out", fix="raise metric_config timeout_s") \
            from exc
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise EvaluationError(f"memory measurement of {model.path} failed: {' | '.join(tail)}",
                              fix="check that the model loads and runs (e.g. with a latency metric)")
    return float(json.loads(lines[-1])["peak_mb"])


def _own_peak_mb() -> float:
    status = Path("/proc/self/status")
    if status.is_file():  # Linux: this image's own high-water mark (see the module's docstring)
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    try:
        import resource
    except ImportError:  # Windows
        import psutil

        return psutil.Process().memory_info().peak_wset / (1024 * 1024)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB elsewhere


def _workload(spec: dict[str, Any]) -> None:
    model_json = spec["model"]
    model = ModelRef(kind=model_json["kind"], path=Path(model_json["path"]), onnx_file=model_json["onnx_file"],
                     attributes=model_json.get("attributes") or {})
    batch, seq, new_tokens = spec["batch_size"], spec["sequence_length"], spec["new_tokens"]
    if model.is_genai:
        import numpy as np
        import onnxruntime_genai as og

        from modelmill.evaluate.llm import genai_model

        og_model = genai_model(model.path, spec["execution_provider"])
        vocab = int(json.loads((model.path / "genai_config.json").read_text())["model"].get("vocab_size") or 100)
        params = og.GeneratorParams(og_model)
        params.set_search_options(max_length=seq + new_tokens, min_length=seq + new_tokens, do_sample=False)
        generator = og.Generator(og_model, params)
        generator.append_tokens(np.random.default_rng(0).integers(0, vocab, size=seq).astype(np.int32))
        while not generator.is_done():
            generator.generate_next_token()
    elif model.kind == "onnx":
        from modelmill.evaluate.runtime import ort_session, random_feeds

        session = ort_session(model.model_file, spec["execution_provider"])
        session.run(None, random_feeds(session, model, batch, seq))
    elif model.kind == "hf":
        import numpy as np
        import torch

        from modelmill.evaluate.runtime import forward_arg_names, is_causal_lm, load_hf, token_dims

        hf_model = load_hf(model.path, task=model.attributes.get("task"), trust_remote_code=is_trusted(model))
        ids = torch.from_numpy(np.random.default_rng(0).integers(0, token_dims(model)["vocab_size"],
                                                                 size=(batch, seq)).astype(np.int64))
        with torch.inference_mode():
            if is_causal_lm(model.hf_config()) and hasattr(hf_model, "generate"):
                hf_model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                  max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                  pad_token_id=hf_model.config.eos_token_id)
            else:
                extra = {"token_type_ids": torch.zeros_like(ids)} if "token_type_ids" in forward_arg_names(hf_model) \
                    else {}
                hf_model(input_ids=ids, attention_mask=torch.ones_like(ids), **extra)
    else:
        raise EvaluationError(f"memory of a {model.kind} model is not supported", fix="convert it first")


def _main(argv: list[str]) -> int:
    _workload(json.loads(argv[0]))
    print(json.dumps({"peak_mb": round(_own_peak_mb(), 3)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
