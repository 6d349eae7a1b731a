"""The tutorial's fine-tuning line on the real SmolLM2 sample, then INT4 auto-opt and a chat answer (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelmill.cli import main

pytestmark = pytest.mark.slow


def test_smollm2_lora_then_int4_then_chat(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    finetuned, optimized = tmp_path / "smollm2-finetuned", tmp_path / "smollm2-finetuned-int4"
    events = tmp_path / "events.jsonl"
    assert main(["finetune", "--model_name_or_path", "sample:smollm2", "--data_name", "sample:instructions",
                 "--text_template", "### Question: {instruction}\\n### Answer: {response}", "--max_steps", "30",
                 "--max_seq_len", "256", "--eval_split", "test", "--eval_steps", "30", "--merge_adapter",
                 "--output_path", str(finetuned), "--events", str(events)]) == 0
    evals = [json.loads(line) for line in events.read_text().splitlines() if '"train.eval"' in line]
    assert [e["step"] for e in evals] == [0, 30]
    assert evals[-1]["eval_loss"] < evals[0]["eval_loss"], evals  # the adapter beats the base on held-out data
    assert (finetuned / "adapter" / "adapter_model.safetensors").exists() and (finetuned / "config.json").exists()

    assert main(["auto-opt", "-m", str(finetuned), "--precision", "int4", "-o", str(optimized)]) == 0
    capsys.readouterr()
    assert main(["chat", str(optimized), "What does the built-in function len do in Python?",
                 "--max_new_tokens", "40"]) == 0
    answer = capsys.readouterr().out
    assert len(answer.split()) >= 5 and "len" in answer.lower(), answer
