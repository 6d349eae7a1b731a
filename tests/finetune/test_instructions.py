"""sample:instructions: dolly's fields, derived from Python's own docs, deterministic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelmill.finetune import instructions

DOLLY_FIELDS = {"instruction", "context", "response", "category"}


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MODELMILL_HOME", str(tmp_path))
    return tmp_path


def test_records_have_dollys_fields_and_real_answers() -> None:
    records = list(instructions.build_records())
    assert len(records) > 200
    assert all(set(record) == DOLLY_FIELDS for record in records)
    assert {r["category"] for r in records} == {"open_qa", "closed_qa", "summarization"}
    by_instruction = {r["instruction"]: r["response"] for r in records}
    assert "number of items" in by_instruction["What does the built-in function `len` do in Python?"]
    assert all(r["response"].strip() and len(r["response"]) <= instructions.MAX_RESPONSE_CHARS for r in records)
    assert not any("=====" in r["response"] or "*****" in r["response"] for r in records)


def test_sample_folder_has_train_and_test_splits_and_is_reused(home: Path) -> None:
    folder = instructions.sample_dir()
    train = [json.loads(line) for line in (folder / "train.jsonl").read_text().splitlines()]
    test = [json.loads(line) for line in (folder / "test.jsonl").read_text().splitlines()]
    assert len(train) > 8 * len(test) > 0
    assert not {r["instruction"] for r in test} & {r["instruction"] for r in train}
    stamp = (folder / "train.jsonl").stat().st_mtime_ns
    assert instructions.sample_dir() == folder and (folder / "train.jsonl").stat().st_mtime_ns == stamp
    assert list(instructions.build_records()) == list(instructions.build_records())
