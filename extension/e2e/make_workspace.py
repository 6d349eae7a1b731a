"""Build the e2e workspace: a tiny 2-layer Llama (modelmill.testing.tiny_models' recipe, as the tests build it),
configs that use it, a broken config and a copy of the Olive tutorial config. Run with the project's venv python:

    .venv/bin/python extension/e2e/make_workspace.py OUT_DIR
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from modelmill.testing.tiny_models import VOCAB_SIZE, save_bpe_tokenizer

ROOT = Path(__file__).resolve().parents[2]


def tiny_llama(out: Path, layers: int = 2, hidden: int = 64) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if (out / "config.json").exists():
        return
    out.mkdir(parents=True, exist_ok=True)
    save_bpe_tokenizer(out)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=VOCAB_SIZE, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=2 * hidden, max_position_embeddings=256,
                         bos_token_id=1, eos_token_id=2, pad_token_id=3, tie_word_embeddings=False)
    LlamaForCausalLM(config).eval().save_pretrained(str(out))


def optimize_config(model: str, output: str, cache: str) -> dict:
    """ModelBuilder int4 plus an evaluator measuring size_on_disk: the smallest run with metrics."""
    return {
        "input_model": {"type": "HfModel", "model_path": model, "task": "text-generation"},
        "systems": {"local_system": {"type": "LocalSystem",
                                     "accelerators": [{"device": "cpu", "execution_providers": ["CPUExecutionProvider"]}]}},
        "evaluators": {"size_evaluator": {"metrics": [
            {"name": "size", "type": "size_on_disk", "sub_types": [{"name": "bytes", "priority": 1}]}]}},
        "passes": {"model_builder": {"type": "ModelBuilder", "precision": "int4", "int4_block_size": 32}},
        "evaluator": "size_evaluator",
        "target": "local_system",
        "cache_dir": cache,
        "output_dir": output,
    }


def main() -> None:
    out = Path(sys.argv[1]).resolve()
    out.mkdir(parents=True, exist_ok=True)
    models = out.parent / (out.name + "-models")
    tiny_llama(models / "tiny-llama")
    # A wider model for the cancel test: its ModelBuilder pass runs long enough to be cancelled mid-way.
    tiny_llama(models / "wide-llama", layers=8, hidden=512)
    (out / "tiny_optimize.json").write_text(json.dumps(
        optimize_config(str(models / "tiny-llama"), "models/tiny-int4", "cache"), indent=2) + "\n")
    (out / "wide_optimize.json").write_text(json.dumps(
        optimize_config(str(models / "wide-llama"), "models/wide-int4", "cache-wide"), indent=2) + "\n")
    broken = optimize_config(str(models / "tiny-llama"), "models/broken", "cache")
    broken["passes"]["model_builder"]["precision"] = "int3"          # not a precision ModelBuilder knows
    broken["passes"]["model_builder"]["int4_block_size"] = "thirty-two"  # wrong type
    broken["evaluator"] = "no_such_evaluator"                           # dangling reference
    (out / "broken_config.json").write_text(json.dumps(broken, indent=2) + "\n")
    shutil.copy(ROOT / "tests" / "config" / "data" / "tutorial_config.json", out / "tutorial_config.json")
    (out / "README.md").write_text("# ModelMill e2e workspace\n\nA tiny Llama and workflow configs for the extension's tests.\n")
    print(out)


if __name__ == "__main__":
    main()
