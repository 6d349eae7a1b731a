"""Run Olive's own CPU example configs on ModelMill's local samples (`modelmill run --config C --model sample:X`).

    .venv/bin/python bench/olive_configs_run.py FOLDER... [--select-only] [--limit-s 360] [--per-shape N]
        [--json bench/results/olive_configs_run.json]

FOLDERs are extracted Olive trees (``git archive v0.9.2 examples``, ``git archive rel-0.13.0 test``). Selection
(counts printed at each filter): workflow configs (bench/olive_corpus.workflow_configs) → CPU (an accelerator lists
CPUExecutionProvider, or no provider and no GPU/NPU device; no GPU-only pass keys) → every pass runnable here
(``modelmill run-pass --list-passes``) → the input model is a decoder LLM (→ sample:smollm2) or a text encoder
(→ sample:minilm); vision, speech, diffusion and script-built models are counted apart with the reason.

Each selected config (or ``--per-shape N`` of each distinct pass combination, one model kind each) is run, ONE at a
time, as a subprocess from its own folder with a time limit; then its output is checked:

* encoder: the ONNX model loads in an ORT InferenceSession and runs on fixed sentences; when it returns hidden
  states, the cosine of its mean-pooled embeddings with the PyTorch sample's is reported (ok: ≥ 0.99 fp32/fp16,
  ≥ 0.95 int8); a classification head (the sample has none, so it is randomly initialized at export) is compared
  with the PyTorch model given the head's weights read back from the ONNX file when they are stored as floats.
* LLM: an ORT GenAI output (genai_config.json) loads in ``onnxruntime_genai.Model`` and greedily generates 16
  tokens; a plain ONNX decoder runs one forward pass in ORT. The top-1 next token over every position of a fixed
  prompt is compared with the PyTorch sample's (fp32 paths: ok at ≥ 0.99 agreement; int4/int8: the rate is reported).

``--openvino`` selects instead the configs with an OpenVINO or Quark pass (OpenVINOExecutionProvider counts as CPU
here: the passes convert and compress on the CPU, whatever device the EPContext node names) and checks an OpenVINO
output in the OpenVINO runtime: an LLM IR generates 16 greedy tokens through openvino-genai (compared with the PyTorch
sample's greedy tokens), an encoder IR runs in ``openvino.Core`` (cosine of mean-pooled embeddings with PyTorch), and
an EPContext model (OpenVINOEncapsulation) passes ``onnx.checker`` with its node pointing at the IR beside it; it is
not run, as onnxruntime-openvino must not share an environment with onnxruntime. Run it with the Python of an
environment that has the openvino extra (the ``modelmill`` next to that Python runs the configs):

    /tmp/ovllm-venv/bin/python bench/olive_configs_run.py FOLDER... --openvino [--local-data]

Results go to the JSON (one row per run: config, passes, model, outcome, reason, seconds, check) and a table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import yaml

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from olive_corpus import workflow_configs

# bench/openvino.py would shadow the openvino package (openvino-genai imports it): the bench folder leaves sys.path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]

ROOT = Path(__file__).resolve().parents[1]
# the modelmill of the environment running this script (e.g. one with the openvino extra), else the project's
MODELMILL = next((p for p in (Path(sys.executable).parent / "modelmill", ROOT / ".venv" / "bin" / "modelmill")
                  if p.exists()), ROOT / ".venv" / "bin" / "modelmill")
OPENVINO_PASS = re.compile(r"^(openvino|quark)", re.IGNORECASE)
NON_CPU_EPS = ("CUDA", "Dml", "DML", "TensorRT", "QNN", "ROCM", "MIGraphX", "VitisAI", "OpenVINO", "NvTensorRtRtx",
               "CoreML", "WebGpu", "JsExecutionProvider")
SENTENCES = ["The quick brown fox jumps over the lazy dog.", "ONNX Runtime runs models fast on a CPU.",
             "A sentence encoder maps text to vectors."]
PROMPT = "The capital of France is Paris. Machine learning is a field of study that"


def load(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)


def flat(data: dict[str, Any]) -> dict[str, Any]:
    from modelmill.config.normalize import normalize

    return normalize(data).data


def providers(config: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(execution providers, devices) of the system the config targets (``target``; else all its systems)."""
    eps: list[str] = []
    devices: list[str] = []
    systems = config.get("systems") if isinstance(config.get("systems"), dict) else {}
    target = config.get("target")
    if isinstance(target, dict):
        chosen = [target]
    elif isinstance(target, str) and isinstance(systems.get(target), dict):
        chosen = [systems[target]]
    else:
        chosen = [s for s in systems.values() if isinstance(s, dict)]
    for system in chosen:
        for acc in system.get("accelerators") or []:
            if isinstance(acc, dict):
                eps += [str(ep) for ep in acc.get("execution_providers") or []]
                if acc.get("device"):
                    devices.append(str(acc["device"]).lower())
    eps += [str(ep) for ep in config.get("execution_providers") or []]
    return eps, devices


def gpu_only_keys(passes: dict[str, Any]) -> list[str]:
    found = []
    for name, entry in passes.items():
        if not isinstance(entry, dict):
            continue
        if entry.get("use_gpu") is True or entry.get("float16") is True and entry.get("type") == \
                "OrtTransformersOptimization":
            found.append(f"{name}: use_gpu/float16")
        if str(entry.get("device", "")).lower() in ("gpu", "cuda", "npu"):
            found.append(f"{name}: device {entry['device']}")
        if str(entry.get("execution_provider", "")) and "CPU" not in str(entry.get("execution_provider", "")):
            found.append(f"{name}: execution_provider {entry['execution_provider']}")
    return found


def model_kind(model: dict[str, Any]) -> tuple[str | None, str]:
    """(sample name or None, why) for the config's input model."""
    from modelmill.config.hub_hints import model_kind as kind_of

    mtype = str(model.get("type", ""))
    path = str(model.get("model_path") or "")
    if mtype.lower() == "diffusersmodel":
        return None, "diffusion pipeline"
    if mtype.lower() in ("onnxmodel", "compositemodel") and not path.startswith(("hf", "sample")):
        return None, f"{mtype} input (no HF model to swap in)"
    if mtype.lower() == "pytorchmodel" and not path:
        return None, "PyTorchModel built by a script (model_loader)"
    kind = kind_of(model, path)
    task = str(model.get("task", ""))
    if kind == "a text-generation model":
        return "smollm2", "decoder LLM"
    if kind in ("a sentence encoder", "a BERT-style encoder"):
        return "minilm", "text encoder"
    if task.startswith(("text-classification", "fill-mask", "token-classification", "question-answering")):
        return "minilm", "text encoder (by task)"
    lowered = path.lower()
    if any(w in lowered for w in ("bge", "gte", "e5", "roberta", "bert")):
        return "minilm", "text encoder"
    return None, kind or f"unknown model kind ({path or mtype})"


def select(folders: list[Path], openvino: bool = False) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The configs to run and the counts at each filter. ``openvino``: only those with an OpenVINO*/Quark* pass,
    with OpenVINOExecutionProvider counted as CPU; without it they are left out as "not CPU", as before."""
    from modelmill.passes.registry import all_passes

    runnable = {name.lower() for name in all_passes()}
    counts: dict[str, Any] = {"exist": 0, "cpu": 0, "passes_runnable": 0, "selected": 0}
    if openvino:
        counts = {"exist": 0, "openvino_or_quark": 0, **{k: v for k, v in counts.items() if k != "exist"}}
    skipped: dict[str, Counter[str]] = defaultdict(Counter)
    selected = []
    for folder in folders:
        for path in workflow_configs(folder):
            if path.name.endswith(".local.json"):
                continue  # a --local-data variant written by an earlier run
            counts["exist"] += 1
            try:
                config = flat(load(path))
            except Exception as exc:  # noqa: BLE001 - counted
                skipped["unreadable"][type(exc).__name__] += 1
                continue
            passes = config.get("passes") if isinstance(config.get("passes"), dict) else {}
            if openvino:
                if not any(OPENVINO_PASS.match(str(e.get("type", ""))) for e in passes.values() if isinstance(e, dict)):
                    continue
                counts["openvino_or_quark"] += 1
            eps, devices = providers(config)
            if openvino:
                eps = ["CPUExecutionProvider" if ep == "OpenVINOExecutionProvider" else ep for ep in eps]
            gpu_keys = gpu_only_keys(passes)
            non_cpu = [ep for ep in eps if ep != "CPUExecutionProvider"]
            if eps and "CPUExecutionProvider" not in eps:
                skipped["not CPU"][", ".join(sorted(set(non_cpu)))] += 1
                continue
            if not eps and any(d in ("gpu", "npu") for d in devices):  # no EP: the device decides
                skipped["not CPU"][f"device {devices[0]}"] += 1
                continue
            if gpu_keys:
                skipped["not CPU"]["GPU-only pass keys"] += 1
                continue
            counts["cpu"] += 1
            types = [str(entry.get("type", "")) for entry in passes.values() if isinstance(entry, dict)]
            missing = sorted({t for t in types if t.lower() not in runnable})
            if missing or not types:
                skipped["pass not runnable"][", ".join(missing) or "no passes"] += 1
                continue
            counts["passes_runnable"] += 1
            model = config.get("input_model") if isinstance(config.get("input_model"), dict) else {}
            sample, why = model_kind(model)
            if sample is None:
                skipped["model kind"][why] += 1
                continue
            counts["selected"] += 1
            row = {"config": str(path), "passes": types, "sample": sample, "kind": why,
                   "model": str(model.get("model_path") or model.get("type")), "task": model.get("task")}
            targets = sorted({str(e["target_device"]) for e in passes.values()
                              if isinstance(e, dict) and e.get("target_device")})
            if targets:
                row["target_device"] = ", ".join(targets)
            selected.append(row)
    counts["skipped"] = {k: dict(v.most_common()) for k, v in skipped.items()}
    return selected, counts


def stratify(selected: list[dict[str, Any]], per_shape: int, by_params: bool = False) -> list[dict[str, Any]]:
    """At most ``per_shape`` rows of each pass combination (``by_params``: of each distinct set of pass parameters,
    ov_version and reuse_cache aside, which change no work); each chosen row lists the configs it stands for."""
    shapes: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in selected:
        key: tuple[str, ...] = (row["sample"], *row["passes"])
        if by_params:
            passes = flat(load(Path(row["config"]))).get("passes") or {}
            key = (row["sample"], json.dumps([{k: v for k, v in e.items() if k not in ("ov_version", "reuse_cache")}
                                              for e in passes.values() if isinstance(e, dict)], sort_keys=True))
        shapes[key].append(row)
    chosen = []
    for rows in shapes.values():
        for row in rows[:per_shape]:
            chosen.append({**row, "stands_for": [r["config"] for r in rows[per_shape:]]} if by_params else row)
    return chosen


# ---------------------------------------------------------------- checks


def onnx_files(out: Path) -> list[Path]:
    return sorted(out.rglob("*.onnx"))


def check_encoder(out: Path, sample_dir: Path, task: str | None, int8: bool) -> dict[str, Any]:
    import numpy as np
    import onnx
    import onnxruntime as ort
    import torch
    from onnx import numpy_helper
    from transformers import (
        AutoModel,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    files = onnx_files(out)
    if not files:
        return {"ok": False, "why": "no .onnx file in the output"}
    session = ort.InferenceSession(str(files[0]), providers=["CPUExecutionProvider"])
    tok = AutoTokenizer.from_pretrained(sample_dir)
    enc = tok(SENTENCES, padding="max_length", max_length=128, truncation=True, return_tensors="np")
    feeds = {}
    for inp in session.get_inputs():
        if inp.name in enc:
            value = enc[inp.name]
        elif inp.name == "token_type_ids":
            value = np.zeros_like(enc["input_ids"])
        else:
            return {"ok": False, "why": f"unknown input {inp.name}"}
        fixed = [d if isinstance(d, int) else None for d in inp.shape]
        if fixed and fixed[0] is not None and fixed[0] != value.shape[0]:
            value = value[: fixed[0]]
        if len(fixed) > 1 and fixed[1] is not None and fixed[1] != value.shape[1]:
            value = value[:, : fixed[1]]
        feeds[inp.name] = value.astype(np.int64 if "int64" in inp.type else np.int32)
    outputs = session.run(None, feeds)
    mask = feeds.get("attention_mask", np.ones_like(feeds["input_ids"]))
    n = feeds["input_ids"].shape[0]
    first = np.asarray(outputs[0], dtype=np.float32)
    threshold = 0.95 if int8 else 0.99
    with torch.no_grad():
        torch_inputs = {k: torch.from_numpy(v[:n].astype(np.int64)) for k, v in feeds.items()}
        if first.ndim == 3:
            ref = AutoModel.from_pretrained(sample_dir).eval()(**torch_inputs).last_hidden_state.numpy()
            m = mask[..., None].astype(np.float32)
            a, b = (first * m).sum(1) / m.sum(1), (ref * m).sum(1) / m.sum(1)
            what = "mean-pooled embeddings"
        else:
            model = AutoModelForSequenceClassification.from_pretrained(sample_dir).eval()
            weight = model.classifier.weight.detach().numpy()
            inits = {i.name: i for i in onnx.load(str(files[0])).graph.initializer}

            def stored(name: str) -> Any:
                """A float initializer, or an int8/uint8 one dequantized with its scale and zero point."""
                if name in inits and inits[name].data_type == onnx.TensorProto.FLOAT:
                    return numpy_helper.to_array(inits[name])
                q = inits.get(f"{name}_quantized")
                scale = next((inits[k] for k in (f"{name}_scale", f"{name}_quantized_scale") if k in inits), None)
                zero = next((inits[k] for k in (f"{name}_zero_point", f"{name}_quantized_zero_point") if k in inits),
                            None)
                if q is None or scale is None:
                    return None
                z = numpy_helper.to_array(zero).astype(np.float32) if zero is not None else 0.0
                return (numpy_helper.to_array(q).astype(np.float32) - z) * numpy_helper.to_array(scale)

            base = next((n.rsplit(".weight", 1)[0] for n in inits if "classifier" in n and ".weight" in n), None)
            found_w = stored(f"{base}.weight") if base else None
            found_b = stored(f"{base}.bias") if base else None
            if found_w is None or found_b is None:
                return {"ok": None, "why": "session loads and runs; the classification head is random at export "
                        "(the sample has none) and could not be read back, so there is no reference",
                        "output_shape": list(first.shape)}
            if found_w.shape != weight.shape:
                found_w = found_w.T
            model.classifier.weight.copy_(torch.from_numpy(found_w.copy()))
            model.classifier.bias.copy_(torch.from_numpy(found_b.copy()))
            a, b = first, model(**torch_inputs).logits.numpy()
            what = "logits (head weights read back from the ONNX file, dequantized if int8)"
    cos = float(np.min((a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))))
    return {"ok": cos >= threshold, "metric": f"min cosine of {what}", "value": round(cos, 5),
            "threshold": threshold, "why": "" if cos >= threshold else f"cosine {cos:.4f} < {threshold}"}


def _reference_top1(sample_dir: Path) -> tuple[list[int], Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(sample_dir)
    ids = tok(PROMPT)["input_ids"]
    with torch.no_grad():
        logits = AutoModelForCausalLM.from_pretrained(sample_dir).eval()(torch.tensor([ids])).logits[0]
    return ids, logits.argmax(-1).numpy()


def check_llm(out: Path, sample_dir: Path, fp32: bool) -> dict[str, Any]:
    import numpy as np

    ids, ref = _reference_top1(sample_dir)
    genai = sorted(out.rglob("genai_config.json"))
    result: dict[str, Any] = {}
    if genai:
        import onnxruntime_genai as og

        model = og.Model(str(genai[0].parent))
        params = og.GeneratorParams(model)
        params.set_search_options(max_length=len(ids) + 16, do_sample=False)
        gen = og.Generator(model, params)
        gen.append_tokens(ids)
        logits = np.asarray(gen.get_output("logits"))
        top1 = logits.reshape(-1, logits.shape[-1]).argmax(-1)[-len(ids):]
        steps = 0
        while not gen.is_done():
            gen.generate_next_token()
            steps += 1
        result["generated_tokens"] = steps
        result["loader"] = "onnxruntime_genai.Model"
    else:
        import onnxruntime as ort

        files = onnx_files(out)
        if not files:
            return {"ok": False, "why": "no .onnx file or genai_config.json in the output"}
        # SplitModel's parts (split_0.onnx, split_1.onnx, ...) run in cascade: each reads by name what the input
        # feeds and the earlier parts produced
        parts = sorted(files, key=lambda f: int(re.sub(r"\D", "", f.stem) or 0)) if len(files) > 1 else files
        sessions = [ort.InferenceSession(str(f), providers=["CPUExecutionProvider"]) for f in parts]
        n = len(ids)
        feeds = {}
        produced = {o.name for sess in sessions for o in sess.get_outputs()}
        graph_inputs = {inp.name: inp for sess in sessions for inp in sess.get_inputs() if inp.name not in produced}
        for inp in graph_inputs.values():
            dtype = np.float16 if "float16" in inp.type else np.float32 if "float" in inp.type else np.int64
            if inp.name == "input_ids":
                feeds[inp.name] = np.array([ids], dtype=np.int64)
            elif inp.name == "attention_mask":
                feeds[inp.name] = np.ones((1, n), dtype=np.int64)
            elif inp.name == "position_ids":
                feeds[inp.name] = np.arange(n, dtype=np.int64)[None]
            elif "past" in inp.name:
                shape = [1 if i == 0 else 0 if i == 2 else d for i, d in enumerate(inp.shape)]
                feeds[inp.name] = np.zeros(shape, dtype=dtype)
            else:
                return {"ok": False, "why": f"unknown input {inp.name}"}
        values = dict(feeds)
        for sess in sessions:
            names = [o.name for o in sess.get_outputs()]
            values.update(zip(names, sess.run(None, {i.name: values[i.name] for i in sess.get_inputs()})))
        logits = values["logits"] if "logits" in values else values[sessions[-1].get_outputs()[0].name]
        top1 = logits.reshape(-1, logits.shape[-1]).argmax(-1)[-n:]
        result["loader"] = "onnxruntime.InferenceSession" + (f" x{len(parts)} (in cascade)" if len(parts) > 1 else "")
    agree = float((np.asarray(top1) == ref).mean())
    result.update({"metric": "top-1 agreement with PyTorch over the prompt", "value": round(agree, 4)})
    if fp32:
        result.update(ok=agree >= 0.99, threshold=0.99, why="" if agree >= 0.99 else f"agreement {agree:.3f}")
    else:
        result.update(ok=True, why="quantized: agreement reported")
    return result


def openvino_irs(out: Path) -> list[Path]:
    """The model IRs (not the tokenizer IRs) under ``out``."""
    return [p for p in sorted(out.rglob("*.xml")) if p.with_suffix(".bin").exists()
            and p.stem not in ("openvino_tokenizer", "openvino_detokenizer")]


def check_epcontext(out: Path) -> dict[str, Any] | None:
    """An OpenVINOEncapsulation output: onnx.checker passes, one com.microsoft EPContext node, embed_mode 0, and its
    ep_cache_context names an IR beside the .onnx file. None when the output has no .onnx file."""
    import onnx

    files = onnx_files(out)
    if not files:
        return None
    proto = onnx.load(str(files[0]), load_external_data=False)
    onnx.checker.check_model(proto)
    nodes = [n for n in proto.graph.node if n.op_type == "EPContext"]
    if len(nodes) != 1 or nodes[0].domain != "com.microsoft":
        return {"ok": False, "why": f"{len(nodes)} EPContext nodes in {files[0].name}"}
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in nodes[0].attribute}
    attrs = {k: v.decode() if isinstance(v, bytes) else v for k, v in attrs.items()}
    target = files[0].parent / str(attrs.get("ep_cache_context", ""))
    ok = attrs.get("embed_mode") == 0 and target.suffix == ".xml" and target.exists() and \
        target.with_suffix(".bin").exists()
    return {"ok": ok, "file": files[0].name, "ep_cache_context": attrs.get("ep_cache_context"),
            "DeviceClass": attrs.get("DeviceClass"), "ep_sdk_version": attrs.get("ep_sdk_version"),
            "why": "" if ok else f"EPContext node does not point at an IR beside it: {attrs}"}


def check_openvino(out: Path, sample_dir: Path, sample: str, int_weights: bool) -> dict[str, Any]:
    """An OpenVINO output: the IR runs in the OpenVINO runtime (LLM: openvino-genai) and is compared with PyTorch;
    an EPContext model beside it is checked statically (onnxruntime-openvino is not installed here)."""
    import numpy as np
    import torch

    irs = openvino_irs(out)
    if not irs:
        return {"ok": False, "why": "no OpenVINO IR in the output"}
    result: dict[str, Any] = {"ir": irs[0].name}
    epcontext = check_epcontext(out)
    if epcontext is not None:
        result["epcontext"] = epcontext
        if not epcontext["ok"]:
            return {**result, "ok": False, "why": f"EPContext: {epcontext['why']}"}
    if sample == "smollm2":
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from modelmill.openvino_genai import generate, llm_ir

        folder = irs[0].parent
        if llm_ir(folder) is None:
            return {**result, "ok": False, "why": "not an openvino-genai LLM folder (tokenizer IRs missing)"}
        text, stats = generate(folder, PROMPT, max_new_tokens=16)
        tok = AutoTokenizer.from_pretrained(sample_dir)
        ids = tok(PROMPT, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            ref_ids = AutoModelForCausalLM.from_pretrained(sample_dir).eval().generate(
                ids, max_new_tokens=16, do_sample=False)[0, ids.shape[1]:].tolist()
        got = tok(text, add_special_tokens=False)["input_ids"]
        same = next((i for i, (a, b) in enumerate(zip(got, ref_ids)) if a != b), min(len(got), len(ref_ids)))
        result.update(loader="openvino_genai.LLMPipeline", text=text, reference=tok.decode(ref_ids),
                      new_tokens=int(stats["new_tokens"]), metric="greedy tokens equal to PyTorch's (of 16)",
                      value=same)
        ok = int(stats["new_tokens"]) > 0 and bool(text.strip())
        if int_weights:
            return {**result, "ok": ok, "why": "" if ok else "no text generated"}
        return {**result, "ok": ok and same >= 8, "threshold": 8,
                "why": "" if ok and same >= 8 else f"{same} of 16 greedy tokens equal to PyTorch's"}
    import openvino as ov
    from transformers import AutoModel, AutoTokenizer

    compiled = ov.Core().compile_model(str(irs[0]), "CPU")
    tok = AutoTokenizer.from_pretrained(sample_dir)
    first = []
    feeds_all = tok(SENTENCES, padding="max_length", max_length=128, truncation=True, return_tensors="np")
    for i in range(len(SENTENCES)):  # batch 1: the Olive recipes fix the shape to [1, 128]
        feeds = {}
        for port in compiled.inputs:
            name = port.get_any_name()
            value = feeds_all[name][i:i + 1] if name in feeds_all else np.zeros((1, 128), dtype=np.int64)
            shape = port.get_partial_shape()
            if shape.is_static and shape[1].get_length() != value.shape[1]:
                value = value[:, : shape[1].get_length()]
            feeds[name] = value.astype(np.int64)
        first.append(np.asarray(compiled(feeds)[compiled.outputs[0]], dtype=np.float32))
    out0 = np.concatenate(first)
    result["output_shape"] = list(out0.shape)
    if out0.ndim != 3:
        return {**result, "ok": None, "why": "IR runs in openvino.Core; its classification head is random at export "
                "(the sample has none), so there is no reference"}
    mask = feeds_all["attention_mask"].astype(np.float32)[..., None]
    with torch.no_grad():
        ref = AutoModel.from_pretrained(sample_dir).eval()(
            **{k: torch.from_numpy(v.astype(np.int64)) for k, v in feeds_all.items()}).last_hidden_state.numpy()
    a, b = (out0 * mask).sum(1) / mask.sum(1), (ref * mask).sum(1) / mask.sum(1)
    cos = float(np.min((a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))))
    threshold = 0.95 if int_weights else 0.99
    return {**result, "ok": cos >= threshold, "metric": "min cosine of mean-pooled embeddings (openvino.Core)",
            "value": round(cos, 5), "threshold": threshold,
            "why": "" if cos >= threshold else f"cosine {cos:.4f} < {threshold}"}


# ---------------------------------------------------------------- runs


def precision_of(row: dict[str, Any], config: dict[str, Any]) -> str:
    text = json.dumps(config.get("passes", {})).lower()
    if "int4" in text or "blockwise" in text or "gptq" in text or "rtn" in text or "matmul4" in text:
        return "int4"
    if "quantization" in text or "int8" in text:
        return "int8"
    if "fp16" in text or "float16" in text:
        return "fp16"
    return "fp32"


def first_error(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    # ModelMill's own "error: ..." line (with its continuation) first: plan lines may hold "error" in a value
    for i, ln in enumerate(lines):
        if ln.startswith("error:"):
            rest = []
            for x in lines[i + 1:i + 4]:
                if re.match(r"(fix:|error:|\d+/\d+ |plan |Traceback)", x):
                    break
                rest.append(x)
            return " ".join([ln, *rest])[:300]
    for i, ln in enumerate(lines):
        if re.search(r"error|refus|not supported|cannot|failed|Traceback", ln, re.IGNORECASE) and not ln.startswith("--model"):
            if ln.endswith(":") and i + 1 < len(lines):  # "the config has 1 error:" → the error itself
                ln = f"{ln} {lines[i + 1]}"
            return ln[:300]
    return (lines[-1] if lines else "no output")[:300]


def _component(config: dict[str, Any], key: str) -> dict[str, Any]:
    part = config.get(key) if isinstance(config.get(key), dict) else {}
    return {**{k: v for k, v in part.items() if k != "params"}, **(part.get("params") or {})}


DATA_FREE_OFF = ("awq", "scale_estimation", "gptq", "lora_correction")


def openvino_local_passes(raw: dict[str, Any]) -> list[str]:
    """Olive's OpenVINO recipes without their scripts and hub data, fitted to the sample (in place):
    OpenVINOConversion without example_input_func (ModelMill builds example inputs from input_shapes),
    OpenVINOQuantization without transform_fn (ModelMill feeds the tokenized local data by input name),
    OpenVINOOptimumConversion without ov_quant_config.dataset where the dataset changes nothing (no AWQ/scale
    estimation/GPTQ, and ratio 1 or the data-free weight_quantization_error sensitivity), and with
    group_size_fallback "adjust" where a group size is set (SmolLM2's widths 576 and 1536 are not multiples of 128,
    the published models' are; nncf's default, as in Olive, is an error). The changes made, named."""
    changes: list[str] = []
    for entry in (raw.get("passes") or {}).values():
        if not isinstance(entry, dict):
            continue
        kind = str(entry.get("type", "")).lower()
        keys = {"openvinoconversion": ("example_input_func",), "openvinoquantization": ("transform_fn",)}.get(kind, ())
        for key in keys:
            if key in entry:
                entry.pop(key)
                entry.pop("user_script", None)
                entry.pop("script_dir", None)
                changes.append(f"no {key}")
        quant = entry.get("ov_quant_config") if kind == "openvinooptimumconversion" else None
        if isinstance(quant, dict) and quant.get("dataset") is not None and not any(quant.get(k) for k in DATA_FREE_OFF) \
                and (quant.get("ratio") in (1, 1.0) or quant.get("sensitivity_metric") == "weight_quantization_error"):
            changes.append(f"no dataset {quant.pop('dataset')!r} (unused: data-free settings)")
        if isinstance(quant, dict) and quant.get("group_size") and not quant.get("group_size_fallback"):
            quant["group_size_fallback"] = "adjust"
            changes.append("group_size_fallback adjust")
    return changes


def local_data_variant(path: Path, data_dir: Path, openvino: bool = False) -> tuple[Path, list[str]] | None:
    """A copy of the config (next to it, ``<stem>.local.json``) whose hub data configs read a local JSONL of
    built-in English sentences instead (the columns its pre-processing names, labels 0/1); None when it has none.
    ``openvino``: also data configs that a user script loads (Olive's OpenVINO recipes load hub sets there) and the
    pass changes of openvino_local_passes."""
    from modelmill.engine.data import hub_dataset
    from modelmill.evaluate.runtime import local_sentences

    raw = load(path)
    configs = raw.get("data_configs")
    entries = configs if isinstance(configs, list) else list(configs.values()) if isinstance(configs, dict) else []
    changed = False
    sentences = local_sentences(64)
    changes = openvino_local_passes(raw) if openvino else []
    changed = bool(changes)
    for entry in entries:
        scripted = openvino and isinstance(entry, dict) and bool(entry.get("user_script"))
        if not isinstance(entry, dict) or (hub_dataset(entry) is None and not scripted):
            continue
        pre = _component(entry, "pre_process_data_config")
        custom_pre = str((entry.get("pre_process_data_config") or {}).get("type", "")) not in ("",
                                                                                             "huggingface_pre_process")
        cols = pre.get("input_cols") if not custom_pre else None
        cols = cols or ["text"]
        label = pre.get("label_col") or "label"
        data_dir.mkdir(parents=True, exist_ok=True)
        data_file = data_dir / f"{path.parent.name}_{entry.get('name', 'data')}.jsonl"
        rows = [{**{c: sentences[(i + j) % len(sentences)] for j, c in enumerate(cols)}, label: i % 2}
                for i in range(32)]
        data_file.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        entry["load_dataset_config"] = {"data_name": "json", "data_files": str(data_file), "split": "train"}
        if custom_pre:
            entry["pre_process_data_config"] = {"input_cols": cols, "max_samples": pre.get("max_samples", 32)}
        entry.pop("user_script", None)
        entry.pop("script_dir", None)
        changes.append(f"data config {entry.get('name', '')} → local JSONL")
        changed = True
    if not changed:
        return None
    variant = path.with_name(f"{path.stem}.local.json")
    variant.write_text(json.dumps(raw, indent=2))
    return variant, changes


def run_one(row: dict[str, Any], out_root: Path, limit_s: int, samples: dict[str, Path]) -> dict[str, Any]:
    path = Path(row.get("run_config") or row["config"])
    out = output_dir(row, out_root)
    cmd = [str(MODELMILL), "run", "--config", path.name, "--model", f"sample:{row['sample']}", "-o", str(out),
           "--overwrite"]
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=path.parent, capture_output=True, text=True, timeout=limit_s,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"}, check=False)
    except subprocess.TimeoutExpired as exc:
        err = (exc.stderr or b"").decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        return {**row, "outcome": "timeout", "reason": f"over {limit_s} s; last: {first_error(err)}",
                "seconds": round(time.perf_counter() - started, 1)}
    seconds = round(time.perf_counter() - started, 1)
    replaced = next((ln for ln in proc.stderr.splitlines() if ln.startswith("--model:")), "")
    result = {**row, "seconds": seconds, "replaced": replaced, "rc": proc.returncode}
    if proc.returncode != 0:
        text = proc.stderr + proc.stdout
        refused = re.search(r"hub|download|local folders only|refus|not found locally|offline|AzureML|Olive-only|user code",
                            text, re.IGNORECASE) and "Traceback" not in text
        result.update(outcome="refused" if refused else "failed", reason=first_error(proc.stderr or proc.stdout))
        result["stderr_tail"] = "\n".join(proc.stderr.splitlines()[-15:])
        return result
    result["stderr_tail"] = "\n".join(proc.stderr.splitlines()[-15:])
    return checked(result, out, samples)


def output_dir(row: dict[str, Any], out_root: Path) -> Path:
    path = Path(row.get("run_config") or row["config"])
    return out_root / re.sub(r"[^A-Za-z0-9_.-]", "_", str(path).split("examples/")[-1])


def checked(row: dict[str, Any], out: Path, samples: dict[str, Path]) -> dict[str, Any]:
    """``row`` with the output check's result and the outcome it gives."""
    result = dict(row)
    try:
        prec = precision_of(row, flat(load(Path(row.get("run_config") or row["config"]))))
        result["precision"] = prec
        if openvino_irs(out):
            check = check_openvino(out, samples[row["sample"]], row["sample"], prec in ("int8", "int4"))
        elif row["sample"] == "minilm":
            check = check_encoder(out, samples["minilm"], row.get("task"), prec in ("int8", "int4"))
        else:
            check = check_llm(out, samples["smollm2"], prec in ("fp32", "fp16"))
    except Exception as exc:  # noqa: BLE001 - recorded as the check's failure
        check = {"ok": False, "why": f"check crashed: {type(exc).__name__}: {str(exc)[:300]}"}
    result["check"] = check
    if check.get("ok") is True:
        result.update(outcome="ok", reason=check.get("why", ""))
    elif check.get("ok") is None:
        result.update(outcome="ok (loads; no reference)", reason=check["why"])
    else:
        result.update(outcome="failed", reason=f"output check: {check['why']}")
    return result


def recheck(results: Path, out_root: Path) -> int:
    from modelmill.samples import fetch

    data = json.loads(results.read_text())
    samples = {name: Path(fetch(name)) for name in ("smollm2", "minilm")}
    data["rows"] = [checked(r, output_dir(r, out_root), samples) if r.get("rc") == 0 else r for r in data["rows"]]
    results.write_text(json.dumps(data, indent=2))
    print(table(data["rows"]))
    print(dict(Counter(r["outcome"] for r in data["rows"])))
    return 0


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| config | passes | sample | outcome | reason / check | s |", "|---|---|---|---|---|---|"]
    for r in rows:
        check = r.get("check") or {}
        detail = r.get("reason", "")
        if "value" in check:
            detail = f"{check['metric']}: {check['value']}" + (f" ({detail})" if detail else "")
        detail = detail.replace("|", "/")
        name = r["config"].split("examples/")[-1].split("test/")[-1] + (" (local data)" if r.get("variant") else "")
        if r.get("target_device"):
            name += f" [{r['target_device']}]"
        if r.get("stands_for"):
            name += f" (+{len(r['stands_for'])} with the same passes)"
        lines.append(f"| {name} | {' → '.join(r['passes'])} | "
                     f"{r['sample']} | {r['outcome']} | {detail} | {r.get('seconds', '')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", type=Path, nargs="+")
    parser.add_argument("--select-only", action="store_true")
    parser.add_argument("--limit-s", type=int, default=360)
    parser.add_argument("--per-shape", type=int, default=0, help="run at most N configs per pass combination")
    parser.add_argument("--by-params", action="store_true",
                        help="with --per-shape: N per distinct set of pass parameters instead of pass combination")
    parser.add_argument("--only", default=None, help="regex on the config path")
    parser.add_argument("--local-data", action="store_true",
                        help="run the configs that read hub data sets with local sentences in their place instead")
    parser.add_argument("--openvino", action="store_true",
                        help="select the configs with an OpenVINO or Quark pass instead (OpenVINOExecutionProvider "
                             "counts as CPU) and check OpenVINO outputs in the OpenVINO runtime")
    parser.add_argument("--out", type=Path, default=Path("/tmp/olive_configs_run"))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--recheck", type=Path, default=None, metavar="JSON",
                        help="check again the outputs of the runs in this results file (no run), and update it")
    args = parser.parse_args(argv)
    if args.recheck:
        return recheck(args.recheck, args.out)
    selected, counts = select([f.resolve() for f in args.folders], args.openvino)
    print(json.dumps(counts, indent=2))
    shapes = Counter(" → ".join([r["sample"], *r["passes"]]) for r in selected)
    print(f"pass combinations: {len(shapes)}")
    for shape, n in shapes.most_common():
        print(f"  {n:3} {shape}")
    chosen = stratify(selected, args.per_shape, args.by_params) if args.per_shape else selected
    if args.only:
        chosen = [r for r in chosen if re.search(args.only, r["config"])]
    if args.local_data:  # only the configs with hub data sets, each reading local sentences instead
        variants = []
        for row in chosen:
            made = local_data_variant(Path(row["config"]), args.out / "data", args.openvino)
            if made is not None:
                variant, changes = made
                label = "; ".join(changes) if args.openvino else "hub data → local JSONL"
                variants.append({**row, "run_config": str(variant), "variant": label})
        chosen = variants
    if args.select_only:
        for r in chosen:
            print(r["config"], r["sample"], r["passes"])
        return 0
    from modelmill.samples import fetch as sample_path

    samples = {name: Path(sample_path(name)) for name in ("smollm2", "minilm")}
    rows = []
    for i, row in enumerate(chosen, 1):
        print(f"[{i}/{len(chosen)}] {row['config']} ({row['sample']})", flush=True)
        result = run_one(row, args.out, args.limit_s, samples)
        print(f"    {result['outcome']} {result.get('seconds')} s: {result.get('reason', '')}", flush=True)
        rows.append(result)
        if args.json:
            args.json.write_text(json.dumps({"counts": counts, "ran": len(rows), "planned": len(chosen),
                                             "per_shape": args.per_shape, "rows": rows}, indent=2))
    print(table(rows))
    print(dict(Counter(r["outcome"] for r in rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
