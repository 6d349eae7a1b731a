"""What the terminal shows at the end of a pass: a training pass ends with its losses (also when no terminal draws
the bars), and sizes are written in human units."""

from __future__ import annotations

import io

from rich.console import Console

from modelmill.render import ProgressRenderer, format_value


def _render(events: list[dict]) -> str:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    with ProgressRenderer(console) as renderer:
        for event in events:
            renderer(event)
    return out.getvalue()


def test_a_training_pass_ends_with_its_first_and_last_losses() -> None:
    base = {"pass_name": "lora", "candidate": None}
    events = [{**base, "type": "pass.started", "index": 0, "total": 1, "pass_type": "LoRA"},
              {**base, "type": "train.eval", "step": 0, "eval_loss": 2.5}]
    events += [{**base, "type": "train.step", "step": step, "max_steps": 30, "loss": 3.0 - step / 20,
                "learning_rate": 1e-4} for step in range(1, 31)]
    events += [{**base, "type": "train.eval", "step": 30, "eval_loss": 1.25},
               {**base, "type": "pass.finished", "duration_s": 12.0, "cached": False}]
    text = _render(events)
    assert "lora: training loss 2.9500 → 1.5000 (30 steps); eval loss 1.2500, from 2.5000 (base model)" in text


def test_a_pass_without_training_prints_no_loss_line() -> None:
    base = {"pass_name": "q", "candidate": None}
    text = _render([{**base, "type": "pass.started", "index": 0, "total": 1, "pass_type": "OnnxDynamicQuantization"},
                    {**base, "type": "pass.finished", "duration_s": 1.0, "cached": False}])
    assert "loss" not in text


def test_sizes_in_human_units() -> None:
    assert format_value(560_488, "bytes") == "547 KiB"
    assert format_value(12.5, "ms") == "12.5 ms"
