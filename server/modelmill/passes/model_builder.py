"""ModelBuilder: the onnxruntime-genai model builder, HF LLM folder → ORT GenAI ONNX model."""

from __future__ import annotations

import contextlib
import io
import logging
import re
from typing import Any, Literal

from pydantic import Field

from modelmill.engine.context import PassContext
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError
from modelmill.passes import split_metadata
from modelmill.passes.base import Pass, PassParams, searchable
from modelmill.passes.builder_memory import BUILD_LOCK, lora_branches_stay_float, streamed_quantization
from modelmill.remote_code import is_trusted, refuse_untrusted_option, require_trust

# The builder's names for execution providers, keyed by ORT's.
BUILDER_EPS = {
    "CPUExecutionProvider": "cpu",
    "CUDAExecutionProvider": "cuda",
    "DmlExecutionProvider": "dml",
    "WebGpuExecutionProvider": "webgpu",
    "JsExecutionProvider": "web",
    "NvTensorRTRTXExecutionProvider": "NvTensorRtRtx",
}


class ModelBuilderParams(PassParams):
    precision: Literal["int4", "int8", "fp16", "fp32", "bf16"] = searchable(
        "int4", ["int4", "int8", "fp32"],
        "Weight precision of the output model. int4/int8 quantize MatMul weights block-wise (MatMulNBits); "
        "fp16 needs a GPU execution provider, bf16 the CUDA one.")
    int4_block_size: Literal[16, 32, 64, 128, 256] = searchable(
        32, [32, 64, 128],
        "Weights per quantization block for int4/int8. Smaller blocks keep more accuracy, larger ones make a smaller, "
        "slightly faster model.")
    int4_accuracy_level: Literal[0, 1, 2, 3, 4] | None = searchable(
        None, [1, 4],
        "Minimum compute precision of quantized MatMuls: 1 fp32, 2 fp16, 3 bf16, 4 int8. None uses the builder's "
        "default (4 on CPU, the fastest there; 0 elsewhere).")
    int4_is_symmetric: bool = Field(True, description="Quantize weights symmetrically (int4/int8) instead of "
                                    "asymmetric uint4/uint8 with zero points.")
    int4_op_types_to_quantize: list[Literal["MatMul", "Gather"]] | None = Field(
        None, description="Op types to quantize. Add Gather to quantize the embedding table too (smaller output). "
        "None uses the builder's default (MatMul, plus Gather when embeddings are tied to the LM head).")
    int4_nodes_to_exclude: list[str] = Field(
        default_factory=list, description="Node names kept in full precision, e.g. /lm_head/MatMul.")
    int4_algo_config: Literal["default", "rtn", "k_quant", "rtn_last", "k_quant_last", "k_quant_mixed",
                              "k_quant_linear"] = searchable(
        "default", ["default", "k_quant"],
        "Weight quantization algorithm: default/rtn (round to nearest) or k_quant; the *_last/*_mixed/*_linear "
        "variants keep the last MatMul (and sensitive layers) in int8.")
    matmul_mixed_precision: str | None = Field(
        None, description="Per-group override, e.g. 'last_matmul:int8,mixed_layers:int8' keeps the LM head and "
        "sensitive layers in int8.")
    exclude_embeds: bool = Field(False, description="Leave the embedding layer out; the model then takes inputs_embeds.")
    exclude_lm_head: bool = Field(False, description="Leave the LM head out; the model then returns hidden_states.")
    include_hidden_states: bool = Field(False, description="Also return hidden states beside logits.")
    prune_lm_head: bool = Field(False, description="Compute logits for the last prompt token only during prefill "
                                "(faster prefill; generation output is unchanged).")
    enable_cuda_graph: bool = Field(False, description="Enable CUDA graph capture in genai_config.json (CUDA only).")
    execution_provider: str | None = Field(
        None, description="Execution provider to build for. None takes it from the target system's accelerator.")
    search: dict[str, Any] | None = Field(
        None, description="Generation defaults merged into genai_config.json 'search' (e.g. max_length, top_k).")
    tune_session: bool = Field(
        False, description="After the build, time a few ONNX Runtime session settings (intra-op threads, "
        "spinning) for this model on this machine with short prefill + decode probes and write the fastest into "
        "genai_config.json's decoder session_options; keeps the builder's settings unless a candidate is faster "
        "beyond noise. CPU only. The cached output is per machine (CPU model and count are part of its key); "
        "what was tried and measured is in modelmill_run.json. auto-opt turns it on (--no_tune turns it off).")
    tune_session_budget_s: float = Field(
        20.0, gt=0, description="Time budget of tune_session in seconds (probes stop after the round that "
        "reaches it; at least one round runs).")
    extra_options: dict[str, Any] = Field(
        default_factory=dict, description="Raw builder --extra_options key=value pairs; they override the fields above.")


class ModelBuilder(Pass):
    name = "ModelBuilder"
    aliases = ("GenAIModelBuilder",)
    description = ("Builds an ONNX Runtime GenAI model from a Hugging Face LLM folder with onnxruntime-genai's model "
                   "builder: fused attention (GroupQueryAttention), KV cache, optional int4/int8 MatMulNBits weights, "
                   "plus genai_config.json and tokenizer files, ready for `modelmill chat`.")
    Params = ModelBuilderParams
    accepts = frozenset({"hf"})
    produces = "onnx"
    supported_precisions = ("int4", "int8", "fp16", "fp32", "bf16")
    output_is_fused = True

    @classmethod
    def cache_context(cls, params: PassParams) -> dict[str, Any] | None:
        """A tuned output holds settings measured on this machine: key it by the machine and the tuner's code."""
        if not getattr(params, "tune_session", False):
            return None
        from modelmill import genai_tuning
        from modelmill.engine.cache import pass_code_digest

        return {"machine": genai_tuning.machine_fingerprint(), "tuner": pass_code_digest(genai_tuning.Trial)}

    def run(self, model: ModelRef, params: PassParams, ctx: PassContext) -> ModelRef:
        assert isinstance(params, ModelBuilderParams)
        if model.kind != "hf":
            raise PassError(f"ModelBuilder needs a Hugging Face model folder but got a {model.kind} model at {model.path}",
                            fix="make the input model an HfModel (model_path: a local folder with config.json)")
        ep = params.execution_provider or ctx.accelerator.execution_provider
        builder_ep = BUILDER_EPS.get(ep)
        if builder_ep is None:
            raise PassError(f"ModelBuilder cannot build for {ep}",
                            fix=f"use one of: {', '.join(BUILDER_EPS)}")
        _check_precision(params.precision, builder_ep)
        # The builder loads config, tokenizer and adapter with trust_remote_code=hf_remote.
        refuse_untrusted_option(model, self.name, f"passes.{ctx.pass_name}.extra_options.hf_remote",
                                params.extra_options.get("hf_remote"))
        require_trust(model, self.name)
        num_layers = int(model.hf_config().get("num_hidden_layers") or 0)
        options = builder_options(params, trust_remote_code=is_trusted(model))
        ctx.log(f"onnxruntime-genai builder: precision={params.precision} ep={builder_ep} options={options}")
        _build(model, params.precision, builder_ep, options, ctx, num_layers)
        # CaptureSplitInfo's assignments, for SplitModel (as Olive does; the builder names nodes /model/layers.N/...)
        split_metadata.write_split_metadata(ctx.output_dir / "model.onnx", model.attributes)
        if params.search:
            _merge_search(ctx.output_dir / "genai_config.json", params.search)
        _copy_generation_files(model, ctx)
        if params.tune_session:
            _tune_session(params, builder_ep, ctx)
        return ModelRef(kind="onnx", path=ctx.output_dir, onnx_file="model.onnx",
                        attributes={**model.attributes, "genai": True, "precision": params.precision,
                                    "execution_provider": ep})


def builder_options(params: ModelBuilderParams, trust_remote_code: bool = False) -> dict[str, str]:
    """The builder's --extra_options for these params (current, non-prefixed names)."""
    options: dict[str, Any] = {"hf_token": "false", "hf_remote": str(trust_remote_code).lower()}
    if params.precision in ("int4", "int8"):
        options["block_size"] = params.int4_block_size
        if params.int4_accuracy_level is not None:
            options["accuracy_level"] = params.int4_accuracy_level
        options["is_symmetric"] = str(params.int4_is_symmetric).lower()
        if params.int4_op_types_to_quantize:
            options["op_types_to_quantize"] = "/".join(params.int4_op_types_to_quantize)
        if params.int4_nodes_to_exclude:
            options["nodes_to_exclude"] = ",".join(params.int4_nodes_to_exclude)
        if params.int4_algo_config != "default":
            options["algo_config"] = params.int4_algo_config
        if params.matmul_mixed_precision:
            options["matmul_mixed_precision"] = params.matmul_mixed_precision
    for flag in ("exclude_embeds", "exclude_lm_head", "include_hidden_states", "prune_lm_head", "enable_cuda_graph"):
        if getattr(params, flag):
            options[flag] = "true"
    options.update({key: value for key, value in params.extra_options.items()})
    return {key: str(value) for key, value in options.items()}


def _check_precision(precision: str, builder_ep: str) -> None:
    if precision == "fp16" and builder_ep == "cpu":
        raise PassError("ModelBuilder: fp16 is not supported on the CPU execution provider",
                        fix="use precision int4, int8 or fp32 on CPU, or target a GPU (CUDAExecutionProvider)")
    if precision == "bf16" and builder_ep not in ("cuda", "NvTensorRtRtx"):
        raise PassError("ModelBuilder: bf16 needs the CUDA execution provider",
                        fix="use precision int4, int8 or fp32 here, or target CUDAExecutionProvider")


class _ProgressWriter(io.TextIOBase):
    """Turns the builder's stdout ("Reading layer N", "Saving ...") into progress events."""

    def __init__(self, ctx: PassContext, num_layers: int) -> None:
        self.ctx, self.num_layers, self.buffer, self.done = ctx, max(num_layers, 1), "", 0.0

    def write(self, text: str) -> int:
        self.buffer += text
        while "\n" in self.buffer:
            line, self.buffer = self.buffer.split("\n", 1)
            self._line(line.strip())
        return len(text)

    def _line(self, line: str) -> None:
        if not line:
            return
        match = re.match(r"Reading layer (\d+)", line)
        if match:
            self._advance(0.6 * (int(match.group(1)) + 1) / self.num_layers, line)
        elif line.startswith("Reading"):
            self._advance(0.02, line)
        elif line.startswith("Saving ONNX model") or line.startswith("Quantizing"):
            self._advance(0.65, line)
        elif line.startswith("Saving GenAI config"):
            self._advance(0.95, line)
        else:
            self.ctx.log(line, "debug")

    def _advance(self, fraction: float, message: str) -> None:
        # Phases print in a fixed order, but "Reading ..." lines also follow the layers: never go backwards.
        self.done = max(self.done, fraction)
        self.ctx.progress(self.done, message)


class _QuantizerProgress(logging.Handler):
    """The weight quantizer logs one line per MatMul; count them for progress."""

    def __init__(self, ctx: PassContext, num_layers: int) -> None:
        super().__init__(logging.INFO)
        self.ctx, self.total, self.done = ctx, max(num_layers * 7 + 1, 1), 0

    def emit(self, record: logging.LogRecord) -> None:
        if "complete quantization" in record.getMessage():
            self.done += 1
            if self.done % 8 == 0 or self.done == self.total:
                self.ctx.progress(0.65 + 0.3 * min(self.done / self.total, 1.0), f"quantized {self.done} MatMuls")


def _build(model: ModelRef, precision: str, builder_ep: str, options: dict[str, str], ctx: PassContext,
           num_layers: int) -> None:
    from onnxruntime_genai.models import builder

    quant_logger = logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer")
    handler = _QuantizerProgress(ctx, num_layers)
    previous = quant_logger.propagate
    quant_logger.addHandler(handler)
    quant_logger.propagate = False  # keep the per-MatMul lines out of the user's terminal
    cache = ctx.cache_dir / "model_builder"
    writer = _ProgressWriter(ctx, num_layers)
    try:
        base = model.base_model_path
        from modelmill.passes.builder_embedding import quantized_embedding
        from modelmill.quant.checkpoint import builder_view, stored_embedding

        embedding = stored_embedding(base)  # an rtn checkpoint's quantized table: GatherBlockQuantized, as Olive
        base = builder_view(base, ctx.work_dir)
        if model.adapter_dir is not None:
            # The builder loads base + adapter with peft and keeps the LoRA MatMuls beside the base ones.
            options = {**options, "adapter_path": str(model.adapter_dir)}
        with BUILD_LOCK, contextlib.redirect_stdout(writer), streamed_quantization(builder, ctx, base), \
                lora_branches_stay_float(builder), quantized_embedding(builder, embedding, ctx), \
                _package_commit_stamp():
            kv = [f"{key}={value}" for key, value in options.items()]
            extra = builder.parse_extra_options(str(base), str(base), str(ctx.output_dir), precision,
                                                builder_ep, str(cache), kv)
            builder.create_model(str(base), str(base), str(ctx.output_dir), precision, builder_ep,
                                 str(cache), **extra)
    except PassError:
        raise
    except (ValueError, NotImplementedError, KeyError) as exc:
        raise PassError(f"the onnxruntime-genai builder rejected this model or option: {exc}",
                        fix="check that the architecture is one the builder supports (Llama, Qwen2/3, Mistral, Phi, "
                            "Gemma, ...) and the options are valid") from exc
    finally:
        quant_logger.removeHandler(handler)
        quant_logger.propagate = previous


@contextlib.contextmanager
def _package_commit_stamp() -> Any:
    """Stamp the wheel's commit, not the enclosing checkout's, into the model's producer_version.

    The 0.18 builder runs `git rev-parse HEAD` five folders above its own file to find its source revision; in a
    virtual environment that lives inside a git checkout (this repository's .venv, or a user's project) that is the
    *project's* HEAD, so model.onnx changed with every unrelated commit (and carried the project's revision). The
    installed package's __commit__ is what the builder falls back to outside a checkout.
    """
    import importlib

    import onnxruntime_genai.models  # noqa: F401  (puts the builder's folder on sys.path, as `builders`)

    base = importlib.import_module("builders.base")  # the module the builder itself imports

    def package_commit(cls: type) -> str | None:
        import onnxruntime_genai

        return getattr(onnxruntime_genai, "__commit__", None) or None

    original = base.Model.__dict__.get("get_genai_commit")
    if original is None:  # another builder version: nothing to pin
        yield
        return
    base.Model.get_genai_commit = classmethod(package_commit)
    try:
        yield
    finally:
        base.Model.get_genai_commit = original


def _tune_session(params: ModelBuilderParams, builder_ep: str, ctx: PassContext) -> None:
    """Measure session settings for the built model and write the fastest (see modelmill/genai_tuning.py)."""
    from modelmill import genai_tuning

    if builder_ep != "cpu":
        ctx.log(f"session tuning skipped: it tunes CPU threads, this model is built for {builder_ep}")
        ctx.report("session_tuning", {"chosen": None, "note": f"not tuned: built for {builder_ep}"})
        return
    ctx.progress(0.96, "session tuning")
    result = genai_tuning.tune(ctx.output_dir, budget_s=params.tune_session_budget_s,
                               progress=lambda fraction, message: ctx.progress(0.96 + 0.04 * fraction, message))
    summary = result.to_json()
    ctx.report("session_tuning", summary)
    trials = ", ".join(f"{t['name']}: {t['prefill_tokens_per_s']} / {t['decode_tokens_per_s']} tok/s"
                       for t in summary["trials"])
    ctx.log(f"session tuning ({summary['duration_s']} s, prefill / decode): {trials}; chose {result.chosen}"
            + (f" ({result.note})" if result.note else ""))
    if result.machine_busy:
        ctx.warn(f"the machine was busy while the session settings were timed (other processes used "
                 f"{result.other_load:.1f} of {result.cpus} CPUs), so '{result.chosen}' may not be the fastest when it "
                 "is idle; the output is cached with this choice: rebuild it when the machine is idle (with "
                 "MODELMILL_HOME set to a new folder, the cache's home) or set session_options in genai_config.json "
                 "by hand")


def _merge_search(genai_config_path: Any, search: dict[str, Any]) -> None:
    import json

    config = json.loads(genai_config_path.read_text())
    config.setdefault("search", {}).update(search)
    genai_config_path.write_text(json.dumps(config, indent=4))


def _copy_generation_files(model: ModelRef, ctx: PassContext) -> None:
    """The builder copies tokenizer files; also keep special_tokens_map.json where the source has one."""
    import shutil

    for name in ("special_tokens_map.json", "chat_template.jinja", "generation_config.json"):
        source = model.base_model_path / name
        if source.exists() and not (ctx.output_dir / name).exists():
            shutil.copy2(source, ctx.output_dir / name)
