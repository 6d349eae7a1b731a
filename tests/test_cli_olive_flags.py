"""Every Olive 0.13 command and flag parses in `modelmill` (never "unrecognized arguments").

OLIVE_FLAGS holds, for each of Olive 0.13's 18 commands (olive-ai 0.13.0, olive/cli/*.py on rel-0.13.0), each
flag's spellings as Olive's parser defines them, a sample value (None: a switch) and whether Olive requires it.
Flags that cannot work here must still parse; they fail at run time with a reason (tests/commands/).
"""

from __future__ import annotations

import argparse

import pytest

from modelmill.cli import build_parser

OLIVE_FLAGS: dict[str, list[tuple[list[str], str | None, bool]]] = {
    "init": [
        (['-o', '--output_path'], 'x', False),
    ],
    "run": [
        (['--run-config', '--config'], 'x', True),
        (['--list_required_packages'], None, False),
        (['--tempdir'], 'x', False),
        (['--package-config'], 'x', False),
        (['--log_level'], '1', False),
        (['-m', '--model_name_or_path'], 'x', False),
        (['-t', '--task'], 'x', False),
        (['--trust_remote_code'], None, False),
        (['--test'], 'x', False),
        (['-a', '--adapter_path'], 'x', False),
        (['--model_script'], 'x', False),
        (['--script_dir'], 'x', False),
        (['-o', '--output_path'], 'x', False),
        (['--disable_telemetry'], None, False),
    ],
    "run-pass": [
        (['--pass-name'], 'x', False),
        (['--pass-config'], 'x', False),
        (['--list-passes'], None, False),
        (['-m', '--model_name_or_path'], 'x', False),
        (['-t', '--task'], 'x', False),
        (['--trust_remote_code'], None, False),
        (['--test'], 'x', False),
        (['-a', '--adapter_path'], 'x', False),
        (['--model_script'], 'x', False),
        (['--script_dir'], 'x', False),
        (['-o', '--output_path'], 'x', False),
        (['--device'], 'gpu', False),
        (['--provider'], 'CPUExecutionProvider', False),
        (['--memory'], '16GB', False),
        (['--log_level'], '1', False),
        (['--save_config_file'], None, False),
        (['--dry_run'], None, False),
        (['--disable_telemetry'], None, False),
    ],
    "auto-opt": [
        (['-m', '--model_name_or_path'], 'x', False),
        (['-t', '--task'], 'x', False),
        (['--trust_remote_code'], None, False),
        (['--test'], 'x', False),
        (['-a', '--adapter_path'], 'x', False),
        (['--model_script'], 'x', False),
        (['--script_dir'], 'x', False),
        (['-o', '--output_path'], 'x', False),
        (['--device'], 'gpu', False),
        (['--provider'], 'CPUExecutionProvider', False),
        (['--memory'], '16GB', False),
        (['-d', '--data_name'], 'x', False),
        (['--split'], 'x', False),
        (['--subset'], 'x', False),
        (['--input_cols'], 'x', False),
        (['--batch_size'], '1', False),
        (['--precision'], 'int4', False),
        (['--use_dynamo_exporter'], None, False),
        (['--use_model_builder'], None, False),
        (['--use_qdq_encoding'], None, False),
        (['--dynamic-to-fixed-shape-dim-param'], 'x', False),
        (['--dynamic-to-fixed-shape-dim-value'], '1', False),
        (['--num-splits'], '1', False),
        (['--cost-model'], 'x', False),
        (['--mixed-precision-overrides-config'], 'x', False),
        (['--use_ort_genai'], None, False),
        (['--account_name'], 'x', False),
        (['--container_name'], 'x', False),
        (['--log_level'], '1', False),
        (['--save_config_file'], None, False),
        (['--dry_run'], None, False),
        (['--disable_telemetry'], None, False),
    ],
    "optimize": [
        (['-m', '--model_name_or_path'], 'x', False),
        (['-t', '--task'], 'x', False),
        (['--trust_remote_code'], None, False),
        (['--test'], 'x', False),
        (['-a', '--adapter_path'], 'x', False),
        (['--model_script'], 'x', False),
        (['--script_dir'], 'x', False),
        (['-o', '--output_path'], 'x', False),
        (['--provider'], 'CPUExecutionProvider', False),
        (['--device'], 'cpu', False),
        (['--precision'], 'int4', False),
        (['--act_precision'], 'int8', False),
        (['--num_split'], '1', False),
        (['--memory'], '1', False),
        (['--exporter'], 'model_builder', False),
        (['--dim_param'], 'x', False),
        (['--dim_value'], '1', False),
        (['--use_qdq_format'], None, False),
        (['--surgeries'], 'x', False),
        (['--block_size'], '1', False),
        (['--modality'], 'text', False),
        (['--enable_aot'], None, False),
        (['--qnn_env_path'], 'x', False),
        (['--extra_mb_options'], 'x', False),
        (['--log_level'], '1', False),
        (['--save_config_file'], None, False),
        (['--dry_run'], None, False),
        (['--disable_telemetry'], None, False),
    ],
    "capture-onnx-graph": [
        (['-m', '--model_name_or_path'], 'x', False),
        (['-t', '--task'], 'x', False),
        (['--trust_remote_code'], None, False),
        (['--test'], 'x', False),
        (['-a', '--adapter_path'], 'x', False),
        (['--model_variant'], 'auto', False),
        (['--model_script'], 'x', False),
        (['--script_dir'], 'x', False),
        (['-o', '--output_path'], 'x', False),
        (['--conversion_device'], 'cpu', False),
        (['--use_dynamo_exporter'], None, False),
        (['--use_model_builder'], None, False),
        (['--use_mobius_builder'], None, False),
        (['--fixed_param_dict'], 'batch_size=1', False),
        (['--past_key_value_name'], 'x', False),
        (['--torch_dtype'], 'x', False),
        (['--target_opset'], '1', False),
        (['--precision'], 'fp16', False),
        (['--int4_block_size'], '16', False),
        (['--int4_accuracy_level'], '4', False),
        (['--exclude_embeds'], 'True', False),
        (['--exclude_lm_head'], 'True', False),
        (['--enable_cuda_graph'], 'True', False),
        (['--extra_mb_options'], 'x', False),
        (['--use_ort_genai'], None, False),
        (['--log_level'], '1', False),
        (['--save_config_file'], None, False),
        (['--dry_run'], None, False),
        (['--account_name'], 'x', False),
        (['--container_name'], 'x', False),
        (['--disable_telemetry'], None, False),
    ],
    "diffusion-lora": [
        (['-m', '--model_name_or_path'], 'x', True),
        (['-o', '--output_path'], 'x', False),
        (['--model_variant'], 'auto', False),
        (['-r', '--lora_r'], '1', False),
        (['--alpha'], '0.5', False),
        (['--lora_dropout'], '0.5', False),
        (['--target_modules'], 'x', False),
        (['--dreambooth'], None, False),
        (['--instance_prompt'], 'x', False),
        (['--with_prior_preservation'], None, False),
        (['--class_prompt'], 'x', False),
        (['--class_data_dir'], 'x', False),
        (['--num_class_images'], '1', False),
        (['--prior_loss_weight'], '0.5', False),
        (['-d', '--data_dir'], 'x', False),
        (['--data_name'], 'x', False),
        (['--data_split'], 'x', False),
        (['--image_column'], 'x', False),
        (['--caption_column'], 'x', False),
        (['--base_resolution'], '1', False),
        (['--max_train_steps'], '1', False),
        (['--learning_rate'], '0.5', False),
        (['--train_batch_size'], '1', False),
        (['--gradient_accumulation_steps'], '1', False),
        (['--mixed_precision'], 'no', False),
        (['--lr_scheduler'], 'constant', False),
        (['--lr_warmup_steps'], '1', False),
        (['--seed'], '1', False),
        (['--guidance_scale'], '0.5', False),
        (['--merge_lora'], None, False),
        (['--account_name'], 'x', False),
        (['--container_name'], 'x', False),
        (['--log_level'], '1', False),
        (['--save_config_file'], None, False),
        (['--dry_run'], None, False),
        (['--disable_telemetry'], None, False),
    ],
    "finetune": [
        (['-m', '--model_name_or_path'], 'x', True),
        (['-t', '--task'], 'x', False),
        (['--trust_remote_code'], None, False),
        (['--test'], 'x', False),
        (['-o', '--output_path'], 'x', False),
        (['--method'], 'lora', False),
        (['--lora_r'], '1', False),
        (['--lora_alpha'], '1', False),
        (['--target_modules'], 'x', False),
        (['--torch_dtype'], 'bfloat16', False),
        (['-d', '--data_name'], 'x', True),
        (['--train_subset'], 'x', False),
        (['--train_split'], 'x', False),
        (['--eval_subset'], 'x', False),
        (['--eval_split'], 'x', False),
        (['--data_files'], 'x', False),
        (['--text_field'], 'x', False),
        (['--text_template'], 'x', False),
        (['--use_chat_template'], None, False),
        (['--max_seq_len'], '1', False),
        (['--add_special_tokens'], 'True', False),
        (['--max_samples'], '1', False),
        (['--batch_size'], '1', False),
        (['--input_cols'], 'x', False),
        (['--account_name'], 'x', False),
        (['--container_name'], 'x', False),
        (['--log_level'], '1', False),
        (['--save_config_file'], None, False),
        (['--dry_run'], None, False),
        (['--disable_telemetry'], None, False),
    ],
    "generate-adapter": [
        (['-m', '--model_name_or_path'], 'x', True),
        (['-o', '--output_path'], 'x', False),
        (['--adapter_type'], 'lora', False),
        (['--adapter_format'], 'pt', False),
        (['--log_level'], '1', False),
        (['--save_config_file'], None, False),
        (['--dry_run'], None, False),
        (['--account_name'], 'x', False),
        (['--container_name'], 'x', False),
        (['--disable_telemetry'], None, False),
    ],
    "convert-adapters": [
        (['-a', '--adapter_path'], 'x', True),
        (['--adapter_format'], 'pt', False),
        (['-o', '--output_path'], 'x', True),
        (['--dtype'], 'float32', False),
        (['--quantize_int4'], None, False),
        (['--int4_block_size'], '16', False),
        (['--int4_quantization_mode'], 'symmetric', False),
        (['--log_level'], '1', False),
        (['--disable_telemetry'], None, False),
    ],
    "quantize": [
        (['-m', '--model_name_or_path'], 'x', False),
        (['-t', '--task'], 'x', False),
        (['--trust_remote_code'], None, False),
        (['--test'], 'x', False),
        (['-a', '--adapter_path'], 'x', False),
        (['--model_script'], 'x', False),
        (['--script_dir'], 'x', False),
        (['-o', '--output_path'], 'x', False),
        (['--algorithm'], 'awq', False),
        (['--precision'], 'int4', False),
        (['--act_precision'], 'int4', False),
        (['--implementation'], 'x', False),
        (['--use_qdq_encoding'], None, False),
        (['-d', '--data_name'], 'x', False),
        (['--subset'], 'x', False),
        (['--split'], 'x', False),
        (['--data_files'], 'x', False),
        (['--text_field'], 'x', False),
        (['--text_template'], 'x', False),
        (['--use_chat_template'], None, False),
        (['--max_seq_len'], '1', False),
        (['--add_special_tokens'], 'True', False),
        (['--max_samples'], '1', False),
        (['--batch_size'], '1', False),
        (['--input_cols'], 'x', False),
        (['--account_name'], 'x', False),
        (['--container_name'], 'x', False),
        (['--log_level'], '1', False),
        (['--save_config_file'], None, False),
        (['--dry_run'], None, False),
        (['--disable_telemetry'], None, False),
    ],
    "tune-session-params": [
        (['-m', '--model_name_or_path'], 'x', True),
        (['-o', '--output_path'], 'x', False),
        (['--cpu_cores'], '1', False),
        (['--io_bind'], None, False),
        (['--enable_cuda_graph'], None, False),
        (['--execution_mode_list'], '1', False),
        (['--opt_level_list'], '1', False),
        (['--trt_fp16_enable'], None, False),
        (['--intra_thread_num_list'], '1', False),
        (['--inter_thread_num_list'], '1', False),
        (['--extra_session_config'], '{"k": "v"}', False),
        (['--disable_force_evaluate_other_eps'], None, False),
        (['--enable_profiling'], None, False),
        (['--predict_with_kv_cache'], None, False),
        (['--device'], 'gpu', False),
        (['--providers_list'], 'CPUExecutionProvider', False),
        (['--memory'], '16GB', False),
        (['--log_level'], '1', False),
        (['--save_config_file'], None, False),
        (['--dry_run'], None, False),
        (['--account_name'], 'x', False),
        (['--container_name'], 'x', False),
        (['--disable_telemetry'], None, False),
    ],
    "generate-cost-model": [
        (['-m', '--model_name_or_path'], 'x', True),
        (['-t', '--task'], 'x', False),
        (['--trust_remote_code'], None, False),
        (['--test'], 'x', False),
        (['-o', '--output_path'], 'x', False),
        (['-p', '--weight_precision'], 'fp32', False),
        (['--disable_telemetry'], None, False),
    ],
    "configure-qualcomm-sdk": [
        (['--py_version'], '3.6', True),
        (['--disable_telemetry'], None, False),
    ],
    "shared-cache": [
        (['--delete'], None, False),
        (['--all'], None, False),
        (['-y', '--yes'], None, False),
        (['--account'], 'x', True),
        (['--container'], 'x', True),
        (['--model_hash'], 'x', False),
        (['--disable_telemetry'], None, False),
    ],
    "extract-adapters": [
        (['-m', '--model_name_or_path'], 'x', False),
        (['-t', '--task'], 'x', False),
        (['--trust_remote_code'], None, False),
        (['--test'], 'x', False),
        (['--model_script'], 'x', False),
        (['--script_dir'], 'x', False),
        (['-o', '--output_path'], 'x', False),
        (['-f', '--format'], 'pt', True),
        (['--dtype'], 'float32', False),
        (['--cache_dir'], 'x', False),
        (['--log_level'], '1', False),
        (['--disable_telemetry'], None, False),
    ],
    "generate-model-package": [
        (['-s', '--source'], 'x', True),
        (['-o', '--output_path'], 'x', True),
        (['--model_name'], 'x', False),
        (['--model_version'], 'x', False),
        (['--log_level'], '1', False),
        (['--disable_telemetry'], None, False),
    ],
    "benchmark": [
        (['-m', '--model_name_or_path'], 'x', False),
        (['-t', '--task'], 'x', False),
        (['--trust_remote_code'], None, False),
        (['--test'], 'x', False),
        (['-a', '--adapter_path'], 'x', False),
        (['--model_script'], 'x', False),
        (['--script_dir'], 'x', False),
        (['-o', '--output_path'], 'x', False),
        (['--tasks'], 'x', True),
        (['--device'], 'cpu', False),
        (['--batch_size'], '1', False),
        (['--max_length'], '1', False),
        (['--limit'], '0.5', False),
        (['--backend'], 'auto', False),
        (['--log_level'], '1', False),
        (['--save_config_file'], None, False),
        (['--dry_run'], None, False),
        (['--account_name'], 'x', False),
        (['--container_name'], 'x', False),
        (['--disable_telemetry'], None, False),
    ],
}


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001
    return dict(action.choices)


def _required_argv(command: str) -> list[str]:
    """Olive's required flags, and -m: ModelMill requires a model where Olive also takes --model_script."""
    argv: list[str] = []
    for flags, value, required in OLIVE_FLAGS[command]:
        if required or flags[0] == "-m":
            argv += [flags[0]] + ([] if value is None else [value])
    return argv


def test_olive_has_18_commands_and_every_one_exists() -> None:
    assert len(OLIVE_FLAGS) == 18
    missing = sorted(set(OLIVE_FLAGS) - set(_subparsers()))
    assert missing == []


@pytest.mark.parametrize("command", sorted(OLIVE_FLAGS))
def test_every_olive_flag_spelling_parses(command: str) -> None:
    parser = _subparsers()[command]
    known = {option for action in parser._actions for option in action.option_strings}  # noqa: SLF001
    missing = [spelling for flags, _, _ in OLIVE_FLAGS[command] for spelling in flags if spelling not in known]
    assert missing == [], f"{command} lacks {missing}"
    base = _required_argv(command)
    for flags, value, _ in OLIVE_FLAGS[command]:
        for spelling in flags:
            argv = [*base, spelling] + ([] if value is None else [value])
            try:
                parser.parse_args(argv)
            except SystemExit:  # pragma: no cover - the assertion names the flag
                pytest.fail(f"modelmill {command} {' '.join(argv)} does not parse")


def test_a_flag_olive_lacks_is_still_refused() -> None:
    """The check above can fail: an unknown flag stops the parser."""
    with pytest.raises(SystemExit):
        _subparsers()["optimize"].parse_args(["--no_such_flag"])


def test_olive_bool_flags_take_a_value_or_none() -> None:
    parser = _subparsers()["capture-onnx-graph"]
    assert parser.parse_args(["-m", "x", "--exclude_embeds", "True"]).exclude_embeds is True
    assert parser.parse_args(["-m", "x", "--exclude_embeds", "false"]).exclude_embeds is False
    assert parser.parse_args(["-m", "x", "--exclude_embeds"]).exclude_embeds is True
