"""OrtSessionParamsTuning: time ONNX Runtime session settings on the model and keep the fastest.

The model files are copied unchanged. The winner is written to
``inference_settings.json``::

    {"execution_provider": ["CPUExecutionProvider"], "provider_options": [{}],
     "session_options": {"intra_op_num_threads": 2, "inter_op_num_threads": 0,
                         "execution_mode": "ORT_SEQUENTIAL", "graph_optimization_level": 99,
                         "extra_session_config": {}},
     "io_bind": false, "best_latency_ms": 1.23, "latency_ms": {"<trial>": 1.23, ...}}

and, for ORT GenAI folders, into genai_config.json's ``model.decoder.session_options``.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import statistics
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from modelmill.engine.context import PassContext
from modelmill.engine.data import calibration_feeds, dummy_feeds, model_dims, onnx_input_specs, resolve_data_config
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError
from modelmill.passes import onnx_io
from modelmill.passes.base import Pass, PassParams, searchable

ExecutionMode = Literal["ORT_SEQUENTIAL", "ORT_PARALLEL"]
# Olive types execution_mode_list as onnxruntime.ExecutionMode's integers: 0 sequential, 1 parallel.
OliveExecutionMode = Literal[0, 1]
_MODE_NAMES = {0: "ORT_SEQUENTIAL", 1: "ORT_PARALLEL"}
OptLevel = Literal[0, 1, 2, 99]
# graph_optimization_level ints → ORT enum names (also what genai_config.json takes).
OPT_LEVEL_NAMES = {0: "ORT_DISABLE_ALL", 1: "ORT_ENABLE_BASIC", 2: "ORT_ENABLE_EXTENDED", 99: "ORT_ENABLE_ALL"}
SETTINGS_FILE = "inference_settings.json"


def _short(provider: str) -> str:
    return provider.removesuffix("ExecutionProvider")


class OrtSessionParamsTuningParams(PassParams):
    data_config: str | dict[str, Any] | None = Field(
        None, description="Inputs to time the model on: a data_configs name or an inline data config (its first "
                          "sample is used). None makes dummy inputs from the model's input shapes.")
    device: Literal["cpu", "gpu"] = Field("cpu", description="Device of the target; with no providers_list, gpu tries "
                                          "CUDAExecutionProvider.")
    cpu_cores: int | None = Field(None, ge=1, description="Most threads any trial may use (default: all CPU cores).")
    io_bind: bool = Field(False, description="Time runs with I/O binding (inputs copied once, outputs left on the "
                          "device). Mostly useful on GPUs.")
    enable_cuda_graph: bool = Field(False, description="Enable CUDA graphs in the CUDA provider's options (needs io_bind "
                                    "and static shapes).")
    providers_list: list[str] | None = Field(
        None, description="Execution providers to try, e.g. [\"CPUExecutionProvider\"]. None tries the target's.")
    provider_options_list: list[dict[str, Any]] | None = Field(
        None, description="Provider options, one dict per entry of providers_list.")
    execution_mode_list: list[ExecutionMode | OliveExecutionMode] | OliveExecutionMode | None = searchable(
        None, [["ORT_SEQUENTIAL"], ["ORT_SEQUENTIAL", "ORT_PARALLEL"]],
        "Execution modes to try. None tries ORT_SEQUENTIAL only (ORT_PARALLEL helps only graphs with parallel branches).")
    opt_level_list: list[OptLevel] | None = searchable(
        None, [[99], [1, 99]], "Graph optimization levels to try (0, 1, 2, 99). None tries 99 (all).")
    intra_thread_num_list: list[int] | None = searchable(
        None, [[1, 2, 4], [1, 2, 4, 8]], "intra_op_num_threads values to try. None tries 1, 2 and all cores. 0 lets "
                                         "ONNX Runtime choose.")
    inter_thread_num_list: list[int] | None = searchable(
        None, [[1], [1, 2]], "inter_op_num_threads values to try with ORT_PARALLEL. None leaves it to ONNX Runtime.")
    trt_fp16_enable: bool = Field(False, description="Set trt_fp16_enable in the TensorRT provider's options.")
    extra_session_config: dict[str, str] | None = Field(
        None, description="Session config entries for every trial, e.g. {\"session.intra_op.allow_spinning\": \"0\"}.")
    force_evaluate_other_eps: bool = Field(False, description="Also try every other execution provider this ONNX "
                                           "Runtime build has.")
    enable_profiling: bool = Field(False, description="Profile the best setting's runs and save the ORT profile as "
                                   "ort_profile.json beside the model.")
    batch_size: int = Field(1, ge=1, description="Batch size of the dummy inputs.")
    sequence_length: int = Field(64, ge=1, description="Sequence length of the dummy inputs (dynamic dims that look "
                                 "like sequence lengths); past KV caches are empty.")
    predict_with_kv_cache: bool = Field(False, description="Time one generation step of a decoder with past "
                                        "KV-cache inputs: 1 new token over a past of sequence_length tokens "
                                        "(dummy inputs; Olive's CLI flag of that name). A model without past KV "
                                        "inputs is timed on its full forward pass, with a warning.")
    warmup_runs: int = Field(2, ge=0, description="Untimed runs before each trial is timed.")
    test_runs: int = Field(10, ge=1, description="Timed runs per trial; the median is the trial's latency.")


class OrtSessionParamsTuning(Pass):
    name = "OrtSessionParamsTuning"
    aliases = ("OrtPerfTuning",)
    description = ("Times the model under combinations of ONNX Runtime session settings (threads, execution mode, "
                   "graph optimization level, providers) and keeps the fastest: the model is copied unchanged and the "
                   "winner goes to inference_settings.json (and genai_config.json for ORT GenAI models).")
    Params = OrtSessionParamsTuningParams
    accepts = frozenset({"onnx"})
    produces = "onnx"

    def run(self, model: ModelRef, params: PassParams, ctx: PassContext) -> ModelRef:
        assert isinstance(params, OrtSessionParamsTuningParams)
        onnx_io.require_onnx(model, self.name)
        import onnxruntime as ort

        providers = _providers(params, ctx, ort.get_available_providers())
        feeds = _inputs(model, params, ctx)
        trials = _trials(params, providers)
        ctx.log(f"{len(trials)} session settings to time, {params.warmup_runs} warm-up + {params.test_runs} runs each")
        latencies: dict[str, float] = {}
        failures: dict[str, str] = {}
        best: dict[str, Any] | None = None
        for index, trial in enumerate(trials):
            label = _label(trial)
            try:
                latency = _time_trial(model, trial, feeds, params)
            except Exception as exc:  # noqa: BLE001 - a provider or setting that fails is skipped
                failures[label] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                ctx.warn(f"{label}: failed ({failures[label]})")
                continue
            latencies[label] = round(latency, 4)
            if best is None or latencies[label] < latencies[_label(best)]:
                best = trial
            ctx.log(f"{label}: {latency:.3f} ms")
            ctx.progress((index + 1) / (len(trials) + 1), f"{label}: {latency:.3f} ms")
        if best is None:
            first = next(iter(failures.values()), "no trials")
            raise PassError(f"{self.name}: the model did not run with any session setting ({first})",
                            fix="check the model loads in onnxruntime, and providers_list / data_config")
        settings = _settings(best, params, latencies)
        ctx.log(f"best: {_label(best)} at {latencies[_label(best)]:.3f} ms")
        _copy_model(model, ctx.output_dir)
        if params.enable_profiling:
            _profile(model, best, feeds, params, ctx)
        (ctx.output_dir / SETTINGS_FILE).write_text(json.dumps(settings, indent=2))
        if (ctx.output_dir / "genai_config.json").exists():
            _update_genai_config(ctx.output_dir / "genai_config.json", best)
        ctx.progress(1.0, f"best {_label(best)}: {latencies[_label(best)]:.3f} ms")
        public = {key: value for key, value in settings.items() if key != "latency_ms"}
        return onnx_io.output_ref(model, ctx.output_dir, file_name=model.onnx_file, inference_settings=public)


def _providers(params: OrtSessionParamsTuningParams, ctx: PassContext, available: list[str]) -> list[tuple[str, dict]]:
    """(provider, options) pairs to try, checked against this ONNX Runtime build."""
    names = list(params.providers_list or [])
    if not names:
        names = ["CUDAExecutionProvider"] if params.device == "gpu" else [ctx.accelerator.execution_provider]
    if params.force_evaluate_other_eps:
        # AzureExecutionProvider calls remote endpoints; the model itself still runs on the CPU provider.
        names += [name for name in available if name not in names and name != "AzureExecutionProvider"]
    options_list = list(params.provider_options_list or [])
    if options_list and len(options_list) != len(params.providers_list or []):
        raise PassError("provider_options_list needs one dict per entry of providers_list",
                        fix="give as many provider option dicts as providers")
    if params.enable_cuda_graph and not params.io_bind:
        raise PassError("enable_cuda_graph needs io_bind: true", fix="set io_bind: true, or enable_cuda_graph: false")
    result = []
    for index, name in enumerate(names):
        if name not in available:
            ctx.warn(f"{name} is not available in this onnxruntime build (available: {', '.join(available)}); skipped")
            continue
        options = dict(options_list[index]) if index < len(options_list) else {}
        if params.enable_cuda_graph and name == "CUDAExecutionProvider":
            options["enable_cuda_graph"] = "1"
        if params.trt_fp16_enable and name == "TensorrtExecutionProvider":
            options["trt_fp16_enable"] = "1"
        result.append((name, options))
    if not result:
        raise PassError(f"none of the execution providers {names} is available in this onnxruntime build",
                        fix=f"use one of: {', '.join(available)}")
    return result


def _inputs(model: ModelRef, params: OrtSessionParamsTuningParams, ctx: PassContext) -> dict[str, Any]:
    specs = onnx_input_specs(model.model_file)
    if params.data_config is not None:
        if params.predict_with_kv_cache:
            ctx.warn("predict_with_kv_cache applies to dummy inputs; the data_config's first sample is timed")
        config = resolve_data_config(params.data_config, ctx.data_configs)
        return calibration_feeds(model, config, specs, 1, sequence_length=params.sequence_length)[0]
    if params.predict_with_kv_cache:
        if any(spec.is_past_kv for spec in specs):
            ctx.log(f"timing one decode step: 1 token over a past KV cache of {params.sequence_length} tokens")
            return dummy_feeds(specs, params.batch_size, 1, params.sequence_length, model_dims(model))
        ctx.warn("predict_with_kv_cache: the model has no past KV-cache inputs; timing its full forward pass")
    return dummy_feeds(specs, params.batch_size, params.sequence_length, 0, model_dims(model))


def _trials(params: OrtSessionParamsTuningParams, providers: list[tuple[str, dict]]) -> list[dict[str, Any]]:
    """Every combination, without repeats (inter-op threads only matter in ORT_PARALLEL mode)."""
    cores = os.cpu_count() or 1
    limit = params.cpu_cores or cores
    intra = params.intra_thread_num_list or [1, 2, cores]
    intra = sorted({min(n, limit) if n > 0 else 0 for n in intra})
    inter = params.inter_thread_num_list or [0]
    inter = sorted({min(n, limit) if n > 0 else 0 for n in inter})
    given = params.execution_mode_list
    given = [given] if isinstance(given, int) else given
    modes = list(dict.fromkeys(_MODE_NAMES.get(m, m) for m in given or ["ORT_SEQUENTIAL"]))  # type: ignore[call-overload]
    levels = list(dict.fromkeys(params.opt_level_list or [99]))
    trials = []
    for (provider, options), mode, level, intra_n in itertools.product(providers, modes, levels, intra):
        for inter_n in (inter if mode == "ORT_PARALLEL" else [0]):
            trials.append({"provider": provider, "provider_options": options, "execution_mode": mode,
                           "graph_optimization_level": level, "intra_op_num_threads": intra_n,
                           "inter_op_num_threads": inter_n})
    return trials


def _label(trial: dict[str, Any]) -> str:
    label = (f"{_short(trial['provider'])} intra={trial['intra_op_num_threads']} "
             f"{'parallel' if trial['execution_mode'] == 'ORT_PARALLEL' else 'sequential'} "
             f"opt={trial['graph_optimization_level']}")
    if trial["execution_mode"] == "ORT_PARALLEL":
        label += f" inter={trial['inter_op_num_threads']}"
    return label


def _session(model: ModelRef, trial: dict[str, Any], params: OrtSessionParamsTuningParams,
             profile_prefix: Path | None = None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = trial["intra_op_num_threads"]
    options.inter_op_num_threads = trial["inter_op_num_threads"]
    options.execution_mode = getattr(ort.ExecutionMode, trial["execution_mode"])
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel,
                                               OPT_LEVEL_NAMES[trial["graph_optimization_level"]])
    options.log_severity_level = 3
    for key, value in (params.extra_session_config or {}).items():
        options.add_session_config_entry(key, str(value))
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = str(profile_prefix)
    return ort.InferenceSession(str(model.model_file), options,
                                providers=[(trial["provider"], trial["provider_options"])])


def _runner(session: Any, feeds: dict[str, Any], io_bind: bool, provider: str) -> Any:
    """A zero-argument callable that runs the session once."""
    if not io_bind:
        return lambda: session.run(None, feeds)
    binding = session.io_binding()
    for name, value in feeds.items():
        binding.bind_cpu_input(name, value)
    device = "cuda" if provider in ("CUDAExecutionProvider", "TensorrtExecutionProvider") else "cpu"
    for output in session.get_outputs():
        binding.bind_output(output.name, device)
    return lambda: session.run_with_iobinding(binding)


def _time_trial(model: ModelRef, trial: dict[str, Any], feeds: dict[str, Any],
                params: OrtSessionParamsTuningParams) -> float:
    """Median latency in milliseconds."""
    session = _session(model, trial, params)
    run_once = _runner(session, feeds, params.io_bind, trial["provider"])
    for _ in range(params.warmup_runs):
        run_once()
    times = []
    for _ in range(params.test_runs):
        start = time.perf_counter()
        run_once()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _settings(best: dict[str, Any], params: OrtSessionParamsTuningParams, latencies: dict[str, float]) -> dict[str, Any]:
    return {
        "execution_provider": [best["provider"]],
        "provider_options": [best["provider_options"]],
        "session_options": {
            "intra_op_num_threads": best["intra_op_num_threads"],
            "inter_op_num_threads": best["inter_op_num_threads"],
            "execution_mode": best["execution_mode"],
            "graph_optimization_level": best["graph_optimization_level"],
            "extra_session_config": dict(params.extra_session_config or {}),
        },
        "io_bind": params.io_bind,
        "best_latency_ms": latencies[_label(best)],
        "latency_ms": latencies,
    }


def _copy_model(model: ModelRef, out_dir: Path) -> None:
    """Copy the model folder unchanged.

    Not hard links: onnx >= 1.20 refuses external data files with several links ("hardlink attack").
    """
    for item in model.path.iterdir():
        name = item.name
        if item.is_file() and (name.endswith((".onnx", ".onnx.data", ".onnx_data")) or name == model.onnx_file + ".data"):
            shutil.copy2(item, out_dir / name)
    onnx_io.copy_companions(model, out_dir)


def _profile(model: ModelRef, best: dict[str, Any], feeds: dict[str, Any], params: OrtSessionParamsTuningParams,
             ctx: PassContext) -> None:
    session = _session(model, best, params, profile_prefix=ctx.work_dir / "ort_profile")
    run_once = _runner(session, feeds, params.io_bind, best["provider"])
    for _ in range(max(1, params.test_runs)):
        run_once()
    shutil.move(session.end_profiling(), ctx.output_dir / "ort_profile.json")


def _update_genai_config(path: Path, best: dict[str, Any]) -> None:
    """Write the thread counts and optimization level into genai_config.json's decoder session options."""
    config = json.loads(path.read_text())
    decoder = config.setdefault("model", {}).setdefault("decoder", {})
    options = decoder.setdefault("session_options", {})
    options["intra_op_num_threads"] = best["intra_op_num_threads"]
    options["inter_op_num_threads"] = best["inter_op_num_threads"]
    options["graph_optimization_level"] = OPT_LEVEL_NAMES[best["graph_optimization_level"]]
    path.write_text(json.dumps(config, indent=4))
