"""GraphSurgeries: applies a list of named graph edits (surgeons, see passes/surgeons/) to an ONNX model."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from modelmill.engine.context import PassContext
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError, RunCancelled
from modelmill.passes import onnx_io
from modelmill.passes.base import OnnxOutputParams, Pass, PassParams


class GraphSurgeriesParams(OnnxOutputParams):
    surgeries: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Surgeries to apply in order, each {\"surgeon\": NAME, ...its parameters}, e.g. "
                    "[{\"surgeon\": \"TieWordEmbeddings\"}]. Olive 0.13's surgeon names (any case).")
    remove_duplicate_initializers: bool = Field(
        True, description="After the surgeries, merge initializers with identical contents (surgeons may add "
                          "copies) with onnx_ir's DeduplicateHashedInitializersPass.")

    @field_validator("surgeries")
    @classmethod
    def _known_surgeons(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from modelmill.passes.surgeons import check_surgery

        for index, spec in enumerate(value):
            problem = check_surgery(spec)
            if problem:
                raise ValueError(f"surgeries[{index}]: {problem}")
        return value


class GraphSurgeries(Pass):
    name = "GraphSurgeries"
    aliases = ()
    description = ("Applies named graph edits (Olive's surgeons) in order: renaming or reordering inputs/outputs, "
                   "op rewrites (Erf→Tanh, QuickGelu, RMSNorm↔L2Norm, MatMul+Add↔Gemm), QDQ removal, tying or "
                   "INT8-quantizing embeddings, GQA input changes. The result is checked with onnx.checker.")
    Params = GraphSurgeriesParams
    accepts = frozenset({"onnx"})
    produces = "onnx"

    def run(self, model: ModelRef, params: PassParams, ctx: PassContext) -> ModelRef:
        assert isinstance(params, GraphSurgeriesParams)
        onnx_io.require_onnx(model, self.name)
        if not params.surgeries:
            raise PassError(f"{self.name}: surgeries is empty", fix="list at least one surgery, e.g. "
                            "surgeries: [{\"surgeon\": \"TieWordEmbeddings\"}], or drop the pass")
        import onnx

        from modelmill.passes.surgeons import find_surgeon
        from modelmill.passes.surgeons.graph import topological_sort

        ctx.progress(0.05, "loading model")
        proto = onnx_io.load(model)
        total = len(params.surgeries)
        for index, spec in enumerate(params.surgeries):
            if ctx.cancel.is_set():
                raise RunCancelled()
            found = find_surgeon(spec["surgeon"])
            assert found is not None  # checked by the Params validator
            ctx.progress(0.1 + 0.7 * index / total, f"surgery {index + 1}/{total}: {found.name}")
            before = len(proto.graph.node)
            ignored = sorted(set(spec) - {"surgeon", *found.parameters})
            if ignored:
                ctx.warn(f"surgeries[{index}] ({found.name}): ignoring unknown keys {', '.join(ignored)}")
            try:
                proto = found.apply(proto, spec)
                topological_sort(proto.graph)
            except (ValueError, KeyError, AssertionError) as exc:
                raise PassError(f"{self.name}: surgeries[{index}] ({found.name}) failed: {exc}",
                                fix="check the surgery's parameters against the model, or drop the surgery") from exc
            ctx.log(f"{found.name}: {before} → {len(proto.graph.node)} nodes")
        if params.remove_duplicate_initializers:
            ctx.progress(0.82, "merging duplicate initializers")
            proto = _deduplicate_initializers(proto)
        ctx.progress(0.88, "checking the result")
        try:
            onnx.checker.check_model(proto, full_check=False)
        except onnx.checker.ValidationError as exc:
            if not _input_fails_alike(model, exc):
                raise PassError(f"{self.name}: the model after the surgeries is not valid ONNX: {str(exc)[:400]}",
                                fix="check the order and parameters of the surgeries") from exc
            # e.g. ModelBuilder's SimplifiedLayerNormalization: ORT registers it in the ONNX domain, onnx does not
            ctx.log(f"onnx.checker rejects the input model the same way, so not the surgeries: {str(exc)[:200]}")
        ctx.progress(0.92, "saving")
        onnx_io.save(proto, ctx.output_dir)
        onnx_io.copy_companions(model, ctx.output_dir)
        ctx.report("surgeries", [spec["surgeon"] for spec in params.surgeries])
        ctx.progress(1.0, f"applied {total} surgeries")
        return onnx_io.output_ref(model, ctx.output_dir)


def _input_fails_alike(model: ModelRef, exc: Exception) -> bool:
    """True when onnx.checker rejects the input model with the same message."""
    import onnx

    try:
        onnx.checker.check_model(str(model.model_file), full_check=False)
    except onnx.checker.ValidationError as before:
        return str(before) == str(exc)
    return False


def _deduplicate_initializers(proto: Any) -> Any:
    import onnx_ir as ir
    from onnx_ir.passes.common import DeduplicateHashedInitializersPass

    model = ir.from_proto(proto)
    DeduplicateHashedInitializersPass()(model)
    return ir.to_proto(model)
