"""``sample:instructions``: a small instruction data set with dolly-15k's fields, made from Python's own docs.

Nothing is downloaded: questions and answers are derived from the language reference that ships with
Python (``pydoc_data.topics``) and from the docstrings of built-in functions and str/list/dict methods.
Every record has dolly's four fields (``instruction``, ``context``, ``response``, ``category``), so the
Olive tutorial's ``--text_template "### Question: {instruction}\\n### Answer: {response}"`` works unchanged.
The build is deterministic: the same Python version gives the same files.
"""

from __future__ import annotations

import builtins
import inspect
import json
import re
import sys
from pathlib import Path
from typing import Iterator

from modelmill.paths import samples_dir

NAME = "instructions"
FORMAT_VERSION = 1
EVAL_EVERY = 10  # every 10th record goes to the test split
MAX_RESPONSE_CHARS = 600

Record = dict[str, str]


def sample_dir() -> Path:
    """The sample's folder (train.jsonl, test.jsonl), built on first use."""
    folder = samples_dir() / NAME
    stamp = folder / ".modelmill-sample.json"  # hidden: data loaders skip it
    expected = {"format": FORMAT_VERSION, "python": sys.version.split()[0]}
    if stamp.exists() and json.loads(stamp.read_text()) == expected:
        return folder
    records = list(build_records())
    staging = folder.with_name(folder.name + ".partial")
    staging.mkdir(parents=True, exist_ok=True)
    splits: dict[str, list[Record]] = {"train": [], "test": []}
    for index, record in enumerate(records):
        splits["test" if index % EVAL_EVERY == EVAL_EVERY - 1 else "train"].append(record)
    for split, rows in splits.items():
        with (staging / f"{split}.jsonl").open("w") as handle:
            handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    (staging / ".modelmill-sample.json").write_text(json.dumps(expected))
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    staging.rename(folder)
    return folder


def build_records() -> Iterator[Record]:
    yield from _reference_records()
    yield from _builtin_records()
    for owner in (str, list, dict):
        yield from _method_records(owner)


# --- the language reference -----------------------------------------------------------------------


def _reference_records() -> Iterator[Record]:
    from pydoc_data.topics import topics

    for key in sorted(topics):
        title, paragraphs = _split_topic(topics[key])
        if not title or not paragraphs:
            continue
        yield {"instruction": _explain(title), "context": "", "response": _clip(paragraphs[0]), "category": "open_qa"}
        # Summarization: a longer paragraph as context, its first sentence as the summary.
        for paragraph in paragraphs[1:3]:
            sentences = _sentences(paragraph)
            if len(sentences) >= 2:
                yield {"instruction": f"Summarize this passage about {_plain_title(title)} in one sentence.",
                       "context": paragraph, "response": sentences[0], "category": "summarization"}
                break


def _split_topic(text: str) -> tuple[str, list[str]]:
    """A topic's title and its prose paragraphs (grammar and code blocks are indented: skipped)."""
    lines = text.splitlines()
    if len(lines) < 3 or not set(lines[1]) <= {"*", "="}:
        return "", []
    blocks = re.split(r"\n\s*\n", "\n".join(lines[2:]))
    prose = [" ".join(block.split()) for block in blocks
             if block.strip() and not block.startswith(" ") and not _has_underline(block)]
    return lines[0].strip(), [p for p in prose if len(p) > 40]


def _has_underline(block: str) -> bool:
    """Section headings are underlined with =, - or *."""
    return any(line.strip() and set(line.strip()) <= {"*", "=", "-"} for line in block.splitlines())


def _explain(title: str) -> str:
    if title.startswith("The "):
        return f"Explain the {title[4:]} in Python."
    return f"Explain {title[0].lower() + title[1:]} in Python."


def _plain_title(title: str) -> str:
    return title[4:] if title.startswith("The ") else title[0].lower() + title[1:]


# --- docstrings ---------------------------------------------------------------------------------


def _builtin_records() -> Iterator[Record]:
    for name, value in sorted(vars(builtins).items()):
        if name.startswith("_") or (isinstance(value, type) and issubclass(value, BaseException)):
            continue
        if not callable(value):
            continue
        answer = _doc_answer(value)
        if answer:
            kind = "class" if isinstance(value, type) else "function"
            yield {"instruction": f"What does the built-in {kind} `{name}` do in Python?", "context": "",
                   "response": answer, "category": "open_qa"}


def _method_records(owner: type) -> Iterator[Record]:
    for name, value in sorted(vars(owner).items()):
        if name.startswith("_"):
            continue
        answer = _doc_answer(value)
        if answer:
            yield {"instruction": f"What does the {owner.__name__} method `{name}` do in Python?",
                   "context": f"{owner.__name__}.{name}{_signature(value)}", "response": answer,
                   "category": "closed_qa"}


def _doc_answer(value: object) -> str:
    doc = inspect.getdoc(value) or ""
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", doc) if p.strip()]
    # Drop signature lines such as "len(obj, /)" that some docstrings start with.
    paragraphs = [p for p in paragraphs if not re.fullmatch(r"[\w.]+\(.*\)( -> .*)?", p)]
    return _clip(paragraphs[0]) if paragraphs and len(paragraphs[0]) > 15 else ""


def _signature(value: object) -> str:
    try:
        return str(inspect.signature(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "(...)"


def _sentences(paragraph: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+(?=[A-Z\"])", paragraph) if s]


def _clip(text: str) -> str:
    """At most MAX_RESPONSE_CHARS, cut at a sentence end where possible."""
    if len(text) <= MAX_RESPONSE_CHARS:
        return text
    kept = ""
    for sentence in _sentences(text):
        if len(kept) + len(sentence) + 1 > MAX_RESPONSE_CHARS:
            break
        kept = f"{kept} {sentence}".strip()
    return kept or text[:MAX_RESPONSE_CHARS].rsplit(" ", 1)[0]
