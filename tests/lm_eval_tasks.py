"""Local lm-eval tasks for the tests, written at test time (no download): one of each kind of request.

- ``tiny_qa``: multiple choice (loglikelihood), 12 questions with 3 choices, ``acc`` and ``acc_norm``;
- ``tiny_text``: perplexity of 4 texts (loglikelihood_rolling; the longest spans several windows at max_length 64);
- ``tiny_gen``: greedy generation (generate_until), ``exact_match``.

Each task is a YAML file whose ``data_files`` name a JSON Lines file beside it by a relative path.
"""

from __future__ import annotations

import json
from pathlib import Path

QA = [(f"What is {a} plus {b}?", [str(a + b), str(a + b + 1), str(a * b + 7)], 0)
      for a in range(1, 5) for b in range(2, 5)]

QA_YAML = """task: tiny_qa
dataset_path: json
dataset_kwargs:
  data_files:
    test: tiny_qa.jsonl
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{question}}\\nAnswer:"
doc_to_choice: "{{choices}}"
doc_to_target: "{{answer}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""

TEXT_YAML = """task: tiny_text
dataset_path: json
dataset_kwargs:
  data_files:
    test: tiny_text.jsonl
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{text}}"
metric_list:
  - metric: word_perplexity
  - metric: byte_perplexity
  - metric: bits_per_byte
metadata:
  version: 1.0
"""

GEN_YAML = """task: tiny_gen
dataset_path: json
dataset_kwargs:
  data_files:
    test: tiny_gen.jsonl
test_split: test
output_type: generate_until
doc_to_text: "{{prompt}}"
doc_to_target: "{{answer}}"
generation_kwargs:
  until: ["\\n\\n"]
  max_gen_toks: 6
  do_sample: false
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""


def _texts() -> list[str]:
    from pydoc_data.topics import topics

    texts = [" ".join(topics[key].split()) for key in sorted(topics)[:4]]
    return [texts[0][:1500], *(text[:300] for text in texts[1:])]


def write_tasks(folder: Path) -> Path:
    """The three tasks' YAML and JSON Lines files in ``folder`` (returned)."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "tiny_qa.jsonl").open("w") as out:
        for question, choices, answer in QA:
            out.write(json.dumps({"question": question, "choices": choices, "answer": answer}) + "\n")
    with (folder / "tiny_text.jsonl").open("w") as out:
        for text in _texts():
            out.write(json.dumps({"text": text}) + "\n")
    with (folder / "tiny_gen.jsonl").open("w") as out:
        for prompt in ("The statement", "A function", "The value of", "In Python,"):
            out.write(json.dumps({"prompt": prompt, "answer": " is"}) + "\n")
    (folder / "tiny_qa.yaml").write_text(QA_YAML)
    (folder / "tiny_text.yaml").write_text(TEXT_YAML)
    (folder / "tiny_gen.yaml").write_text(GEN_YAML)
    return folder
