"""Record the event streams of extension/test/fixtures/ again, from real runs on a tiny local model (no download):

- ``tiny-run.events.jsonl``: ``modelmill run --events`` of ModelBuilder int4 with a size_on_disk evaluator (the
  e2e workspace's tiny_optimize.json: the input model measured, one candidate, its metric);
- ``tiny-finetune.events.jsonl``: ``modelmill finetune --events``, 4 LoRA steps on sample:instructions with an
  eval split, evaluated at steps 0, 2 and 4.

Then the run states the extension's tests render (runs.states.json) are generated from them
(``python -m modelmill.contracts_gen --write``). Run it when an event type in server/modelmill/contracts.py
changes (tests/test_contracts.py says so: the recorded streams must parse as the typed events)::

    .venv/bin/python scripts/record_event_fixtures.py          # ~1 minute on 2 cores

Paths in the streams are written as if the runs had been under /tmp/mmws, so a new recording differs from the last
only where the runs did.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "extension" / "test" / "fixtures"
STABLE = "/tmp/mmws"


def optimize_config(model: Path, output: Path) -> dict:
    return {
        "input_model": {"type": "HfModel", "model_path": str(model), "task": "text-generation"},
        "systems": {"local_system": {"type": "LocalSystem", "accelerators": [
            {"device": "cpu", "execution_providers": ["CPUExecutionProvider"]}]}},
        "evaluators": {"size_evaluator": {"metrics": [
            {"name": "size", "type": "size_on_disk", "sub_types": [{"name": "bytes", "priority": 1}]}]}},
        "passes": {"model_builder": {"type": "ModelBuilder", "precision": "int4", "int4_block_size": 32}},
        "evaluator": "size_evaluator",
        "target": "local_system",
        "cache_dir": "cache",
        "output_dir": str(output),
    }


def _modelmill(args: list[str], cwd: Path, env: dict[str, str]) -> None:
    command = [sys.executable, "-m", "modelmill", *args]
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-4000:]}")


def _stable(source: Path, target: Path, root: Path) -> int:
    """The stream with ``root`` written as /tmp/mmws; each line checked against the typed events."""
    from modelmill.contracts import parse_event

    lines = []
    for line in source.read_text().splitlines():
        event = json.loads(line.replace(json.dumps(str(root))[1:-1], STABLE))
        parse_event(event)
        lines.append(json.dumps(event, ensure_ascii=False))
    target.write_text("\n".join(lines) + "\n")
    return len(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=FIXTURES, help="folder for the .events.jsonl files")
    args = parser.parse_args(argv)

    from modelmill import contracts_gen
    from modelmill.testing.tiny_models import build_tiny_llama

    with tempfile.TemporaryDirectory(prefix="mmws-") as tmp:
        root = Path(tmp)
        env = {**os.environ, "MODELMILL_HOME": str(root / "home"), "TQDM_DISABLE": "1"}
        model = build_tiny_llama(root / "ws-models" / "tiny-llama")
        work = root / "ws"
        work.mkdir()
        config = work / "tiny_optimize.json"
        config.write_text(json.dumps(optimize_config(model, root / "out1"), indent=2))
        _modelmill(["run", "--config", str(config), "--log_level", "1", "--events", str(root / "run.jsonl")], work, env)
        _modelmill(["finetune", "-m", str(model), "-o", str(root / "ft"), "-t", "text-generation-with-past",
                    "-d", "sample:instructions", "--train_split", "train", "--eval_split", "test[:4]",
                    "--text_template", "### Question: {instruction}\n### Answer: {response}", "--max_seq_len", "64",
                    "--lora_r", "4", "--max_steps", "4", "--eval_steps", "2", "--events", str(root / "ft.jsonl")],
                   work, env)
        args.out.mkdir(parents=True, exist_ok=True)
        for source, name in ((root / "run.jsonl", "tiny-run"), (root / "ft.jsonl", "tiny-finetune")):
            count = _stable(source, args.out / f"{name}.events.jsonl", root)
            print(f"{args.out / f'{name}.events.jsonl'}: {count} events")
    if args.out == FIXTURES:
        for path in contracts_gen.write():
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
