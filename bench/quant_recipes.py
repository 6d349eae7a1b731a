"""PyTorch-level quantization recipes on sample:smollm2 (issue 14): perplexity, size and decode speed at int4.

Variants, all with the same block size (--block, default 64) and built by ModelBuilder (int4) into ORT GenAI
models. Olive's recipe uses 128, but SmolLM2's hidden size (576 = 4.5 x 128) is not a multiple of 128, which
block-wise PyTorch quantization (Olive's and ModelMill's) needs; 64 divides every input dimension (576, 1536).

- ``builder RTN``: plain ModelBuilder int4 on the fp32 input (the builder's own round-to-nearest, symmetric as
  auto-opt builds it; asymmetric as well, like the PyTorch passes);
- ``rtn``: the rtn pass (4-bit, asymmetric) -> ModelBuilder;
- ``gptq``: the gptq pass (4-bit, asymmetric) on local calibration text -> ModelBuilder;
- ``gptq + SelectiveMixedPrecision``: kld_gradient (ratio 0.65, high 8 bits) -> gptq -> ModelBuilder;
- ``recipe``: Olive's CPU INT4 recipe, SelectiveMixedPrecision -> gptq -> rtn (8-bit lm_head and embeddings
  through overrides) -> ModelBuilder (int4, keeping the quantized weights), the input in fp32;
- ``Olive recipe (fp16 load)``: the same as published: the input loaded in float16 (``load_kwargs``), and
  GraphSurgeries TieWordEmbeddings at the end (the 8-bit embedding and LM head stored once);
- ``auto-opt --precision int4``: auto-opt's ModelBuilder options (block 32, MatMul + Gather, accuracy level 4),
  without its session tuning, so that every row is timed with the builder's session settings;
- ``QuaRot``: the QuaRot pass (hadamard, or random) -> builder RTN (symmetric), and QuaRot (hadamard) -> gptq ->
  ModelBuilder. The rotation unties the embeddings from the LM head (the final norm is fused into the head), so
  the builder quantizes a separate LM head and keeps the embeddings in fp32 unless asked to quantize Gather too
  (the ``+ int4 embeddings`` variants: the precision of the baseline's tied table).

The LM head stays float in the rtn/gptq checkpoints except in ``recipe``, so ModelBuilder quantizes it (int4,
round to nearest) in every other variant, as it does for builder RTN. Perplexity is scored llama.cpp's way
(second half of consecutive 512-token chunks) on the *end* of Python's pydoc topics, while calibration (gptq:
64 x 512 tokens, kld_gradient: 16 x 256) reads from their start: the evaluation text is held out.

    .venv/bin/python bench/quant_recipes.py               # all variants (GPTQ on 2 cores: several minutes each)
    .venv/bin/python bench/quant_recipes.py --chunks 8    # shorter evaluation
    .venv/bin/python bench/quant_recipes.py --variants "builder RTN (sym;QuaRot"   # only these (label prefixes);
                                               # their rows replace those of the saved results, the others stay

Stage outputs are kept under --work (default /tmp/modelmill-quant-recipes) and reused by a rerun.
Results: bench/results/quant_recipes.json and bench/results/quant_recipes/README.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vs_llamacpp import GenAIModel, fp32_perplexity, text_chunks  # noqa: E402

from modelmill.engine.context import PassContext  # noqa: E402
from modelmill.engine.events import EventBus  # noqa: E402
from modelmill.engine.model import ModelRef  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


class BLOCK:  # noqa: N801 - set once from --block
    value = 64


def _context(work: Path, name: str) -> PassContext:
    base = work / name
    for folder in ("output", "work", "cache"):
        shutil.rmtree(base / folder, ignore_errors=True) if folder != "cache" else None
        (base / folder).mkdir(parents=True, exist_ok=True)
    bus = EventBus(run_id=f"bench-{name}")
    bus.listeners.append(lambda e: print(f"  [{name}] {e['message']}", file=sys.stderr, flush=True)
                         if e["type"] == "log" else None)
    return PassContext(pass_name=name, output_dir=base / "output", work_dir=base / "work", cache_dir=base / "cache",
                       bus=bus)


def stage(work: Path, name: str, make: Callable[[PassContext], ModelRef]) -> tuple[ModelRef, float]:
    """Run a pass once; a finished stage (``done.json``) is reused."""
    done = work / name / "done.json"
    if done.exists():
        saved = json.loads(done.read_text())
        return ModelRef(saved["kind"], Path(saved["path"]), attributes=saved["attributes"]), saved["seconds"]
    print(f"{name} ...", flush=True)
    ctx = _context(work, name)
    started = time.perf_counter()
    model = make(ctx)
    seconds = round(time.perf_counter() - started, 1)
    done.write_text(json.dumps({"kind": model.kind, "path": str(model.path), "attributes": model.attributes,
                                "seconds": seconds, "reports": ctx.reports}, default=str))
    print(f"{name}: {seconds} s", flush=True)
    return model, seconds


def build(work: Path, name: str, source: ModelRef, **params: Any) -> tuple[ModelRef, float]:
    from modelmill.passes.model_builder import ModelBuilder, ModelBuilderParams

    options = {"precision": "int4", "int4_block_size": BLOCK.value, **params}
    return stage(work, name, lambda ctx: ModelBuilder().run(source, ModelBuilderParams(**options), ctx))


def tie(work: Path, name: str, source: ModelRef) -> tuple[ModelRef, float]:
    """GraphSurgeries TieWordEmbeddings, the recipe's last pass."""
    from modelmill.passes.graph_surgeries import GraphSurgeries, GraphSurgeriesParams

    params = GraphSurgeriesParams(surgeries=[{"surgeon": "TieWordEmbeddings"}])
    return stage(work, name, lambda ctx: GraphSurgeries().run(source, params, ctx))


def olive_recipe(work: Path, hf: ModelRef, args: argparse.Namespace) -> tuple[ModelRef, float]:
    """Olive's CPU INT4 recipe as published: the input loaded in float16 (load_kwargs.torch_dtype), SMP
    (kld_gradient) -> gptq -> rtn (8-bit lm_head and embeddings) -> ModelBuilder int4 -> TieWordEmbeddings."""
    from modelmill.passes.gptq import Gptq, GptqParams
    from modelmill.passes.rtn import Rtn, RtnParams
    from modelmill.passes.selective_mixed_precision import SelectiveMixedPrecision, SelectiveMixedPrecisionParams

    half = hf.with_attributes(torch_dtype="float16")  # what the engine makes of load_kwargs: {torch_dtype: float16}
    smp_params = SelectiveMixedPrecisionParams(algorithm="kld_gradient", bits=4, high_bits=8, ratio=0.65,
                                               group_size=BLOCK.value, calibration_samples=args.kld_samples)
    smp, smp_s = stage(work, "fp16_smp", lambda ctx: SelectiveMixedPrecision().run(half, smp_params, ctx))
    gptq_params = GptqParams(bits=4, sym=False, group_size=BLOCK.value, calibration_samples=args.gptq_samples,
                             calibration_seq_len=args.gptq_seq_len)
    mixed, gptq_s = stage(work, "fp16_smp_gptq", lambda ctx: Gptq().run(smp, gptq_params, ctx))
    overrides = {"lm_head": {"bits": 8}, "model.embed_tokens": {"bits": 8}}
    rtn_params = RtnParams(bits=4, sym=False, group_size=BLOCK.value, lm_head=True, embeds=True, overrides=overrides)
    quantized, rtn_s = stage(work, "fp16_recipe_rtn", lambda ctx: Rtn().run(mixed, rtn_params, ctx))
    built, build_s = build(work, "fp16_recipe_builder", quantized)
    tied, tie_s = tie(work, "fp16_recipe_tied", built)
    return tied, round(smp_s + gptq_s + rtn_s + build_s + tie_s, 1)


def onnx_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.name.startswith("model.onnx"))


def variants(work: Path, hf: ModelRef, args: argparse.Namespace) -> dict[str, tuple[ModelRef, float]]:
    """The variants ``--variants`` asks for (all by default): label -> (built model, seconds of its stages)."""
    from modelmill.passes.gptq import Gptq, GptqParams
    from modelmill.passes.quarot import QuaRot, QuaRotParams
    from modelmill.passes.rtn import Rtn, RtnParams
    from modelmill.passes.selective_mixed_precision import SelectiveMixedPrecision, SelectiveMixedPrecisionParams

    gptq_params = {"bits": 4, "sym": False, "group_size": BLOCK.value, "calibration_samples": args.gptq_samples,
                   "calibration_seq_len": args.gptq_seq_len}
    found: dict[str, tuple[ModelRef, float]] = {}
    if wanted("auto-opt --precision int4", args):  # its builder options exactly (block 32), without session tuning
        found["auto-opt --precision int4 (block 32)"] = build(
            work, "auto_opt_int4", hf, int4_block_size=32, int4_op_types_to_quantize=["MatMul", "Gather"],
            int4_accuracy_level=4)
    if wanted("Olive recipe", args):
        found["Olive recipe (fp16 load): SMP -> gptq -> rtn 8-bit head/embeds -> builder -> TieWordEmbeddings"] = \
            olive_recipe(work, hf, args)
    if wanted("builder RTN (symmetric, auto-opt's)", args):
        found["builder RTN (symmetric, auto-opt's)"] = build(work, "builder_rtn_sym", hf)
    if wanted("builder RTN (asymmetric)", args):
        found["builder RTN (asymmetric)"] = build(work, "builder_rtn_asym", hf, int4_is_symmetric=False)
    if wanted("rtn", args):
        rtn, rtn_s = stage(work, "rtn", lambda ctx: Rtn().run(hf, RtnParams(bits=4, sym=False, group_size=BLOCK.value), ctx))
        model, seconds = build(work, "rtn_builder", rtn)
        found["rtn"] = (model, seconds + rtn_s)
    if wanted("gptq", args):
        gptq, gptq_s = stage(work, "gptq", lambda ctx: Gptq().run(hf, GptqParams(**gptq_params), ctx))
        model, seconds = build(work, "gptq_builder", gptq)
        found["gptq"] = (model, seconds + gptq_s)
    if wanted("gptq + SelectiveMixedPrecision", args) or wanted("recipe", args):
        smp_params = SelectiveMixedPrecisionParams(algorithm="kld_gradient", bits=4, high_bits=8, ratio=0.65,
                                                   group_size=BLOCK.value, calibration_samples=args.kld_samples)
        smp, smp_s = stage(work, "smp", lambda ctx: SelectiveMixedPrecision().run(hf, smp_params, ctx))
        mixed, mixed_s = stage(work, "smp_gptq", lambda ctx: Gptq().run(smp, GptqParams(**gptq_params), ctx))
        model, seconds = build(work, "smp_gptq_builder", mixed)
        found["gptq + SelectiveMixedPrecision"] = (model, seconds + smp_s + mixed_s)
        overrides = {"lm_head": {"bits": 8}, "model.embed_tokens": {"bits": 8}}
        recipe_rtn, recipe_s = stage(work, "recipe_rtn", lambda ctx: Rtn().run(
            mixed, RtnParams(bits=4, sym=False, group_size=BLOCK.value, lm_head=True, embeds=True, overrides=overrides), ctx))
        model, seconds = build(work, "recipe_builder", recipe_rtn)
        found["recipe: SMP -> gptq -> rtn (8-bit head/embeds)"] = (model, seconds + smp_s + mixed_s + recipe_s)
    def quarot(mode: str = "hadamard") -> tuple[ModelRef, float]:
        return stage(work, f"quarot_{mode}", lambda ctx: QuaRot().run(hf, QuaRotParams(rotate_mode=mode), ctx))

    def quarot_gptq() -> tuple[ModelRef, float]:
        rotated, rotate_s = quarot()
        model, gptq_s = stage(work, "quarot_gptq", lambda ctx: Gptq().run(rotated, GptqParams(**gptq_params), ctx))
        return model, rotate_s + gptq_s

    # untied, the embedding table stays fp32 unless Gather is quantized too (the baseline's tied table is int4)
    gather = {"int4_op_types_to_quantize": ["MatMul", "Gather"]}
    for label, make, stage_name, options in (
            ("QuaRot (hadamard) -> builder RTN (symmetric)", quarot, "quarot_hadamard_builder_rtn_sym", {}),
            ("QuaRot (random) -> builder RTN (symmetric)", lambda: quarot("random"), "quarot_random_builder_rtn_sym",
             {}),
            ("QuaRot (hadamard) -> gptq", quarot_gptq, "quarot_gptq_builder", {}),
            ("QuaRot (hadamard) -> builder RTN (symmetric) + int4 embeddings", quarot,
             "quarot_hadamard_builder_rtn_sym_gather", gather),
            ("QuaRot (hadamard) -> gptq + int4 embeddings", quarot_gptq, "quarot_gptq_builder_gather", gather)):
        if wanted(label, args):
            source, source_s = make()
            model, seconds = build(work, stage_name, source, **options)
            found[label] = (model, round(seconds + source_s, 1))
    return {name: value for name, value in found.items() if wanted(name, args)}


def wanted(label: str, args: argparse.Namespace) -> bool:
    return not args.variants or any(label.startswith(prefix) for prefix in args.variants.split(";"))


def decode_speed(folder: Path, repeats: int) -> float:
    model = GenAIModel(folder)
    prompt = model.prompt(128)
    model.run(prompt, 16)  # warm-up
    return round(statistics.median(model.run(prompt, 128)["decode"] for _ in range(repeats)), 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/modelmill-quant-recipes"))
    parser.add_argument("--context", type=int, default=512)
    parser.add_argument("--chunks", type=int, default=16)
    parser.add_argument("--gptq-samples", type=int, default=64)
    parser.add_argument("--gptq-seq-len", type=int, default=512)
    parser.add_argument("--kld-samples", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--block", type=int, default=64, help="block (group) size of every variant")
    parser.add_argument("--variants", default="", help="';'-separated label prefixes of the variants to run "
                        "(default: all); the saved results keep the other rows")
    args = parser.parse_args()
    BLOCK.value = args.block
    args.work = args.work / f"block{args.block}"

    from modelmill.engine.data import local_texts
    from modelmill.samples import fetch

    hf_dir = fetch("smollm2")
    hf = ModelRef("hf", hf_dir)
    args.work.mkdir(parents=True, exist_ok=True)
    found = variants(args.work, hf, args)
    text = "\n\n".join(local_texts())
    held_out = text[-args.context * args.chunks * 6:]
    chunks = text_chunks(hf_dir, held_out, args.context, args.chunks)
    rows: dict[str, dict[str, Any]] = {"fp32 input (transformers)": {
        "perplexity": round(fp32_perplexity(hf_dir, chunks), 3),
        "bytes": sum(p.stat().st_size for p in hf_dir.glob("*.safetensors")), "decode_tok_s": None, "seconds": None}}
    for name, (model, seconds) in found.items():
        print(f"evaluating {name}", flush=True)
        try:
            perplexity = round(GenAIModel(model.path).perplexity(chunks), 3)
        except RuntimeError as exc:  # an output ORT GenAI cannot load: reported, not fatal
            rows[name] = {"error": str(exc).splitlines()[0][:300], "bytes": onnx_bytes(model.path), "seconds": seconds}
            continue
        rows[name] = {"perplexity": perplexity, "bytes": onnx_bytes(model.path), "seconds": seconds,
                      "decode_tok_s": None if args.no_speed else decode_speed(model.path, args.repeats)}
    saved_file = RESULTS / "quant_recipes.json"
    saved = json.loads(saved_file.read_text()) if saved_file.exists() else {}
    if args.variants and (saved.get("block"), saved.get("context"), saved.get("chunks")) == (
            BLOCK.value, args.context, len(chunks)):  # a partial run: the other variants' rows stay
        rows = {**saved["rows"], **rows}
    base = rows["fp32 input (transformers)"]["perplexity"]
    lines = [f"# Quantization recipes on sample:smollm2 (int4, block {BLOCK.value})", "",
             f"Perplexity on {len(chunks)} x {args.context} held-out tokens (end of Python's pydoc topics, "
             "second half of each chunk scored); GPTQ calibration: "
             f"{args.gptq_samples} x {args.gptq_seq_len} tokens from their start; kld_gradient: {args.kld_samples} x 256.",
             "", "| variant | perplexity | vs fp32 | size (MiB) | decode tok/s | build s |", "|---|---:|---:|---:|---:|---:|"]
    for name, row in rows.items():
        if "error" in row:
            lines.append(f"| {name} | does not load: {row['error']} | | {row['bytes'] / 2**20:.1f} | | {row['seconds']} |")
            continue
        lines.append(f"| {name} | {row['perplexity']:.3f} | {row['perplexity'] / base - 1:+.1%} |"
                     f" {row['bytes'] / 2**20:.1f} | {row['decode_tok_s'] or '-'} | {row['seconds'] or '-'} |")
    table = "\n".join(lines) + "\n"
    print(table)
    readme = RESULTS / "quant_recipes" / "README.md"
    readme.parent.mkdir(parents=True, exist_ok=True)
    notes = readme.read_text().partition("\nNotes:")[1:] if readme.exists() else ("", "")
    readme.write_text(table + "".join(notes))  # keeps the hand-written notes below the table
    saved_file.write_text(json.dumps({"block": BLOCK.value, "context": args.context, "chunks": len(chunks),
                                      "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
