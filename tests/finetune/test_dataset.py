"""Local training data: file types, folders, save_to_disk, splits, template checks, offline errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelmill.errors import PassError
from modelmill.finetune import dataset as data

ROWS = [{"instruction": f"q{i}", "context": "", "response": f"a{i}", "category": "open_qa"} for i in range(10)]


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv", ".parquet"])
def test_each_file_type_loads_as_the_train_split(tmp_path: Path, suffix: str) -> None:
    import pandas

    path = tmp_path / f"data{suffix}"
    frame = pandas.DataFrame(ROWS)
    {".jsonl": lambda: frame.to_json(path, orient="records", lines=True),
     ".json": lambda: frame.to_json(path, orient="records"),
     ".csv": lambda: frame.to_csv(path, index=False),
     ".parquet": lambda: frame.to_parquet(path)}[suffix]()
    rows = data.load_split(str(path), "train", tmp_path / "cache")
    assert len(rows) == 10 and rows[3]["instruction"] == "q3"


def test_folder_files_named_after_splits(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", ROWS[:8])
    write_jsonl(folder / "test.jsonl", ROWS[8:])
    assert len(data.load_split(str(folder), "train", tmp_path / "c")) == 8
    assert [r["instruction"] for r in data.load_split(str(folder), "test", tmp_path / "c")] == ["q8", "q9"]
    assert len(data.load_split(str(folder), "train[:50%]", tmp_path / "c")) == 4
    with pytest.raises(PassError, match="split 'validation' is not in") as err:
        data.load_split(str(folder), "validation", tmp_path / "c")
    assert "it has test, train" in str(err.value)


def test_save_to_disk_folder_and_its_slices(tmp_path: Path) -> None:
    import datasets

    datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS)}).save_to_disk(str(tmp_path / "saved"))
    assert len(data.load_split(str(tmp_path / "saved"), "train[2:5]", tmp_path / "c")) == 3
    datasets.Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "flat"))
    assert len(data.load_split(str(tmp_path / "flat"), "train[-2:]", tmp_path / "c")) == 2


def test_unreadable_file_names_the_file_and_the_cause(tmp_path: Path) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_text('{"instruction": "q"}\n{not json\n')
    with pytest.raises(PassError, match="broken.jsonl") as err:
        data.load_split(str(path), "train", tmp_path / "c")
    assert "JSON" in err.value.fix


def test_hub_id_is_an_offline_error() -> None:
    with pytest.raises(PassError, match="'microsoft/dolly-15k' not found locally") as err:
        data.resolve_data_path("microsoft/dolly-15k")
    assert "sample:instructions" in err.value.fix


def test_template_escapes_and_fields() -> None:
    template = data.unescape_template("### Question: {instruction}\\n### Answer: {response}")
    assert template == "### Question: {instruction}\n### Answer: {response}"
    assert data.template_fields(template) == ["instruction", "response"]
    with pytest.raises(PassError, match="empty or numbered"):
        data.template_fields("{} {0}")
    with pytest.raises(PassError, match="not a valid template"):
        data.template_fields("{instruction")


def test_missing_template_field_names_it_and_the_fields_present() -> None:
    import datasets

    rows = datasets.Dataset.from_list(ROWS)
    spec = data.TextSpec(text_template="Q: {question}\nA: {response}")
    with pytest.raises(PassError) as err:
        data.check_fields(rows, spec, "my.jsonl")
    message = str(err.value)
    assert "'question'" in message and "instruction, context, response, category" in message
    assert err.value.where == "text_template"
    data.check_fields(rows, data.TextSpec(text_template="{instruction} {response}"), "my.jsonl")  # no error


def test_record_text_by_template_field_and_chat_template() -> None:
    row = ROWS[1]
    assert data.record_text(row, data.TextSpec(text_template="Q: {instruction}\nA: {response}"), None) == "Q: q1\nA: a1"
    assert data.record_text({"text": "hi"}, data.TextSpec(text_field="text"), None) == "hi"

    class ChatTokenizer:
        def apply_chat_template(self, messages: list[dict[str, str]], tokenize: bool) -> str:
            return "|".join(f"{m['role']}:{m['content']}" for m in messages)

    assert data.record_text(row, data.TextSpec(use_chat_template=True), ChatTokenizer()) == "user:q1|assistant:a1"


def test_chat_template_of_a_real_tokenizer(tiny_llama_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_llama_dir))
    row = {**ROWS[1], "context": "some context"}
    text = data.record_text(row, data.TextSpec(use_chat_template=True), tokenizer)
    messages = [{"role": "user", "content": "some context\n\nq1"}, {"role": "assistant", "content": "a1"}]
    assert text == tokenizer.apply_chat_template(messages, tokenize=False)
    assert "some context" in text and "a1" in text


def test_chat_template_needs_a_tokenizer_that_has_one() -> None:
    import datasets

    class PlainTokenizer:
        eos_token = "</s>"
        chat_template = None

    with pytest.raises(PassError, match="has no chat template"):
        data.tokenize(datasets.Dataset.from_list(ROWS), data.TextSpec(use_chat_template=True), PlainTokenizer(), 32)
