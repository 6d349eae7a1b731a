#!/usr/bin/env python
"""The baseline for bench/finetune.py: LoRA fine-tuning as a plain transformers + peft script.

This is the script a user would write without ModelMill (the peft quick-start shape): read the JSONL
with `datasets`, format it with the same template, tokenize, wrap the model with LoraConfig, and run
transformers' Trainer with the same hyperparameters. It prints one JSON line with its own timings.

    python bench/finetune_plain.py MODEL_DIR DATA.jsonl OUT_DIR --max_steps 20 --max_seq_len 256
"""

from __future__ import annotations

import argparse
import json
import time

TEMPLATE = "### Question: {instruction}\n### Answer: {response}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("data")
    parser.add_argument("out")
    parser.add_argument("--max_steps", type=int, default=20)
    parser.add_argument("--max_seq_len", type=int, default=256)
    parser.add_argument("--lora_r", type=int, default=64)
    parser.add_argument("--lora_alpha", type=int, default=16)
    parser.add_argument("--learning_rate", type=float, default=2e-4)
    parser.add_argument("--batch_size", type=int, default=1)
    args = parser.parse_args()
    started = time.perf_counter()

    import datasets
    from peft import LoraConfig, get_peft_model
    from transformers import (AutoModelForCausalLM, AutoTokenizer, DataCollatorForLanguageModeling, Trainer,
                              TrainingArguments)

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    rows = datasets.load_dataset("json", data_files=args.data, split="train")

    def encode(batch: dict) -> dict:
        texts = [TEMPLATE.format(instruction=i, response=r) + tokenizer.eos_token
                 for i, r in zip(batch["instruction"], batch["response"])]
        return tokenizer(texts, truncation=True, max_length=args.max_seq_len)

    train = rows.map(encode, batched=True, remove_columns=rows.column_names)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype="float32")
    model = get_peft_model(model, LoraConfig(r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=0.05,
                                             task_type="CAUSAL_LM"))
    training_args = TrainingArguments(output_dir=args.out, max_steps=args.max_steps, learning_rate=args.learning_rate,
                                      per_device_train_batch_size=args.batch_size, logging_steps=1, save_steps=50,
                                      report_to=[], seed=42, use_cpu=True, disable_tqdm=True)
    trainer = Trainer(model=model, args=training_args, train_dataset=train,
                      data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False))
    train_started = time.perf_counter()
    trainer.train()
    train_seconds = time.perf_counter() - train_started
    model.save_pretrained(f"{args.out}/adapter")
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    print(json.dumps({"steps": trainer.state.global_step, "train_seconds": round(train_seconds, 3),
                      "total_seconds": round(time.perf_counter() - started, 3), "losses": losses}))


if __name__ == "__main__":
    main()
