"""OnnxPeepholeOptimizer: onnxscript's optimizer (constant folding, dead code elimination) and rewrite rules."""

from __future__ import annotations

import importlib.util
from typing import Any

from pydantic import Field

from modelmill.engine.context import PassContext
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError
from modelmill.passes import onnx_io
from modelmill.passes.base import OnnxOutputParams, Pass, PassParams

MSFT_DOMAIN = "com.microsoft"
# onnxscript default rewrite rules left to their own switches.
RESHAPE_RULES = {"ReshapeReshape"}
CAST_CHAIN_RULES = {"CastCast"}


class OnnxPeepholeOptimizerParams(OnnxOutputParams):
    onnxscript_optimize: bool = Field(
        True, description="Run onnxscript's optimizer (constant folding, removal of unused nodes and functions, "
                          "inlining) and its default rewrite rules (no-op Cast/Expand/Transpose removal, "
                          "Unsqueeze/Transpose merging, ...).")
    onnxoptimizer_optimize: bool = Field(
        True, description="Also run the onnxoptimizer package's default passes, when it is installed (skipped "
                          "otherwise).")
    fuse_reshape_operations: bool = Field(True, description="Merge consecutive Reshape nodes into one.")
    fix_com_microsoft_opset: bool = Field(
        False, description="Make the com.microsoft opset import version 1 (what ONNX Runtime's contrib ops use), adding "
                           "it when the graph uses contrib ops without declaring it.")
    cast_chain_elimination: bool = Field(
        False, description="Collapse chains of Casts (Cast→Cast). Off by default: a narrowing Cast in a chain changes "
                           "values.")


class OnnxPeepholeOptimizer(Pass):
    name = "OnnxPeepholeOptimizer"
    aliases = ()
    description = ("Light, numerics-preserving graph clean-up: onnxscript constant folding and dead code elimination, "
                   "no-op removal and Reshape merging (plus onnxoptimizer's passes when installed). Makes exported "
                   "graphs smaller and easier for later passes to fuse.")
    Params = OnnxPeepholeOptimizerParams
    accepts = frozenset({"onnx"})
    produces = "onnx"

    def run(self, model: ModelRef, params: PassParams, ctx: PassContext) -> ModelRef:
        assert isinstance(params, OnnxPeepholeOptimizerParams)
        onnx_io.require_onnx(model, self.name)
        ctx.progress(0.05, "loading model")
        proto = onnx_io.load(model)
        before = len(proto.graph.node)
        try:
            if params.onnxscript_optimize or params.fuse_reshape_operations or params.cast_chain_elimination:
                proto = _onnxscript(proto, params, ctx)
            if params.onnxoptimizer_optimize:
                proto = _onnxoptimizer(proto, ctx)
        except PassError:
            raise
        except Exception as exc:  # noqa: BLE001 - optimizer failures come in many types
            raise PassError(f"{self.name} failed: {type(exc).__name__}: {exc}",
                            fix="set onnxscript_optimize: false (or onnxoptimizer_optimize: false) to skip the failing "
                                "step") from exc
        if params.fix_com_microsoft_opset:
            _fix_msft_opset(proto)
        after = len(proto.graph.node)
        ctx.log(f"{before} → {after} nodes")
        ctx.progress(0.85, "saving")
        onnx_io.save(proto, ctx.output_dir)
        onnx_io.copy_companions(model, ctx.output_dir)
        ctx.progress(1.0, f"{before} → {after} nodes")
        return onnx_io.output_ref(model, ctx.output_dir)


def _onnxscript(proto: Any, params: OnnxPeepholeOptimizerParams, ctx: PassContext) -> Any:
    import onnxscript.optimizer
    import onnxscript.rewriter

    if params.onnxscript_optimize:
        ctx.progress(0.2, "onnxscript: constant folding, dead code elimination")
        proto = onnxscript.optimizer.optimize(proto)
    rules = []
    for rule in onnxscript.rewriter._DEFAULT_REWRITE_RULES:  # noqa: SLF001 - the library's own default set
        rule_name = getattr(rule, "name", None)
        if rule_name in RESHAPE_RULES:
            wanted = params.fuse_reshape_operations
        elif rule_name in CAST_CHAIN_RULES:
            wanted = params.cast_chain_elimination
        else:
            wanted = params.onnxscript_optimize
        if wanted:
            rules.append(rule)
    if rules:
        ctx.progress(0.5, f"onnxscript: {len(rules)} rewrite rules")
        proto = onnxscript.rewriter.rewrite(proto, pattern_rewrite_rules=rules)
    return proto


def _onnxoptimizer(proto: Any, ctx: PassContext) -> Any:
    if importlib.util.find_spec("onnxoptimizer") is None:
        ctx.log("onnxoptimizer is not installed; skipping its passes (pip install onnxoptimizer to enable them)")
        return proto
    import onnxoptimizer

    ctx.progress(0.7, "onnxoptimizer")
    return onnxoptimizer.optimize(proto)


def _fix_msft_opset(proto: Any) -> None:
    uses_contrib = any(node.domain == MSFT_DOMAIN for node in proto.graph.node)
    for opset in proto.opset_import:
        if opset.domain == MSFT_DOMAIN:
            opset.version = 1
            return
    if uses_contrib:
        entry = proto.opset_import.add()
        entry.domain = MSFT_DOMAIN
        entry.version = 1
