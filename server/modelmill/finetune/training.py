"""LoRA training with transformers' Trainer and peft: events per step, cancel at a step, resume.

The training loop is the Trainer's own; ModelMill adds a callback that turns its logs into run
events (step, loss, learning rate, eta, eval loss) and stops at the next step on cancel, after
saving a checkpoint. Checkpoints live in a folder keyed by everything that shapes the training, so
running the same command again resumes from the last one instead of starting over.
"""

from __future__ import annotations

import json
import math
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from modelmill.errors import PassError

if TYPE_CHECKING:
    import datasets

Emit = Callable[..., Any]


@dataclass
class LoraSettings:
    r: int
    alpha: int
    dropout: float
    target_modules: list[str] | None
    modules_to_save: list[str] | None


@dataclass
class TrainingOutcome:
    steps: int
    max_steps: int
    cancelled: bool
    checkpoint: Path | None
    log_history: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0


def resolve_dtype(name: str, on_gpu: bool) -> "Any":
    import torch

    if name == "auto":
        # CPUs without AMX emulate bf16 matmuls (several times slower than fp32): train in fp32 there.
        return torch.bfloat16 if on_gpu and torch.cuda.is_bf16_supported() else torch.float32
    return getattr(torch, name)


def load_peft_model(model_dir: Path, lora: LoraSettings, dtype: Any, trust_remote_code: bool) -> tuple[Any, Any]:
    """The base model with fresh LoRA layers, and its tokenizer (given a pad token if it has none)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype, trust_remote_code=trust_remote_code)
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, task_type="CAUSAL_LM",
                        target_modules=lora.target_modules, modules_to_save=lora.modules_to_save)
    try:
        return get_peft_model(model, config), tokenizer
    except ValueError as exc:  # peft knows no default target modules for this architecture, or a name is wrong
        linear = sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                         if type(module).__name__ == "Linear"})
        raise PassError(f"LoRA cannot wrap the model's layers: {exc}",
                        fix=f"set target_modules (--target_modules) to some of its linear layers: {', '.join(linear)}",
                        where="target_modules") from exc


class EventCallback:
    """Trainer callback: run events for every logged step and evaluation; stop at a step on cancel."""

    def __init__(self, emit: Emit, progress: Callable[[float, str], None], cancel: threading.Event) -> None:
        from transformers import TrainerCallback

        self.emit, self.progress, self.cancel = emit, progress, cancel
        self.cancelled_at: int | None = None
        self._started = time.perf_counter()
        self._first_step: int | None = None
        # transformers loads lazily (config tooling never pays for it), so the TrainerCallback subclass is made
        # here, its hooks bound to this object.
        self.callback = type("ModelMillEvents", (TrainerCallback,), {
            "on_train_begin": self._on_train_begin, "on_step_end": self._on_step_end, "on_log": self._on_log})()

    def _on_train_begin(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        self._started, self._first_step = time.perf_counter(), state.global_step

    def _on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> Any:
        if self.cancel.is_set() and self.cancelled_at is None:
            self.cancelled_at = state.global_step
            control.should_save = True  # a checkpoint of this step: the next run resumes from it
            control.should_training_stop = True
        return control

    def _on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **_: Any) -> None:
        logs = logs or {}
        step, total = state.global_step, max(state.max_steps, 1)
        done = step - (self._first_step or 0)
        elapsed = time.perf_counter() - self._started
        rate = done / elapsed if done and elapsed > 0 else None
        eta = (total - step) / rate if rate else None
        if "eval_loss" in logs:
            self.emit("train.eval", step=step, eval_loss=_number(logs["eval_loss"]))
            return
        if "loss" not in logs:
            return  # the end-of-training summary: the last step was already reported
        loss, lr = _number(logs.get("loss")), _number(logs.get("learning_rate"))
        self.emit("train.step", step=step, max_steps=total, epoch=_number(state.epoch), loss=loss,
                  learning_rate=lr, grad_norm=_number(logs.get("grad_norm")),
                  steps_per_s=round(rate, 3) if rate else None, eta_s=round(eta, 1) if eta is not None else None)
        eta_text = f", eta {eta:.0f}s" if eta is not None else ""
        self.progress(step / total, f"step {step}/{total}, loss {loss:.4f}, lr {lr:.2e}{eta_text}"
                      if loss is not None and lr is not None else f"step {step}/{total}")


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def train(model: Any, tokenizer: Any, train_data: "datasets.Dataset", eval_data: "datasets.Dataset | None",
          arguments: dict[str, Any], checkpoint_dir: Path, events: EventCallback) -> TrainingOutcome:
    """Run the Trainer (resuming from ``checkpoint_dir`` when it holds a checkpoint)."""
    from transformers import DataCollatorForLanguageModeling, PrinterCallback, Trainer, TrainingArguments

    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    arguments = dict(arguments)
    if arguments.pop("gradient_checkpointing", False):  # renamed activation_checkpointing in transformers 5
        renamed = "activation_checkpointing" in TrainingArguments.__dataclass_fields__
        arguments["activation_checkpointing" if renamed else "gradient_checkpointing"] = True
    args = TrainingArguments(
        output_dir=str(checkpoint_dir), report_to=[], disable_tqdm=True,
        save_strategy="steps", save_total_limit=1, eval_strategy="steps" if eval_data is not None else "no",
        eval_on_start=eval_data is not None,  # the base model's eval loss: the baseline the adapter must beat
        remove_unused_columns=False, dataloader_num_workers=0, **arguments)
    trainer = Trainer(model=model, args=args, train_dataset=train_data, eval_dataset=eval_data,
                      data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
                      callbacks=[events.callback])
    trainer.remove_callback(PrinterCallback)  # it prints every log dict: the events carry them instead
    resume = last_checkpoint(checkpoint_dir)
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    state = trainer.state
    return TrainingOutcome(steps=state.global_step, max_steps=state.max_steps,
                           cancelled=events.cancelled_at is not None, checkpoint=last_checkpoint(checkpoint_dir),
                           log_history=list(state.log_history), train_seconds=time.perf_counter() - started)


def last_checkpoint(folder: Path) -> Path | None:
    """The newest complete Trainer checkpoint in ``folder`` (one with its trainer_state.json)."""
    if not folder.exists():
        return None
    found = [p for p in folder.glob("checkpoint-*") if (p / "trainer_state.json").exists()
             and p.name.split("-")[-1].isdigit()]
    return max(found, key=lambda p: int(p.name.split("-")[-1]), default=None)


def save_outputs(model: Any, tokenizer: Any, base_dir: Path, out_dir: Path, merge: bool,
                 outcome: TrainingOutcome, summary: dict[str, Any]) -> None:
    """adapter/ (safetensors + config), optionally the merged model at the top, and training_log.json."""
    adapter_dir = out_dir / "adapter"
    model.save_pretrained(str(adapter_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(adapter_dir))
    _point_at_base(adapter_dir / "adapter_config.json", base_dir)
    if merge:
        merged = model.merge_and_unload()
        merged.save_pretrained(str(out_dir), safe_serialization=True)
        tokenizer.save_pretrained(str(out_dir))
        for name in ("generation_config.json",):
            if (base_dir / name).exists() and not (out_dir / name).exists():
                shutil.copy2(base_dir / name, out_dir / name)
    log = {**summary, "steps": outcome.steps, "max_steps": outcome.max_steps,
           "train_seconds": round(outcome.train_seconds, 3), "log_history": outcome.log_history}
    (out_dir / "training_log.json").write_text(json.dumps(log, indent=2))


def _point_at_base(config_file: Path, base_dir: Path) -> None:
    """Record the base model's local path, so the adapter alone says what it applies to."""
    config = json.loads(config_file.read_text())
    config["base_model_name_or_path"] = str(base_dir)
    config_file.write_text(json.dumps(config, indent=2))
