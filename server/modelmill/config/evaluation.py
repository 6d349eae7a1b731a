"""``data_configs`` and ``evaluators`` with their metrics (reference §4)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from modelmill.config.common import StrictModel, by_kind
from modelmill.evaluate.catalog import CATALOG, METRIC_TYPES, OPEN_METRIC_TYPES

DATA_CONTAINERS = ("DataContainer", "HuggingfaceContainer", "DummyDataContainer", "RawDataContainer",
                   "ImageDataContainer", "TransformersDummyDataContainer", "TransformersPromptDummyDataContainer",
                   "TransformersTokenDummyDataContainer")

# Registered components per data-config section; a user_script may register more.
DATA_COMPONENTS: dict[str, tuple[str, ...]] = {
    "load_dataset_config": ("huggingface_dataset", "local_dataset", "raw_dataset", "dummy_dataset", "simple_dataset",
                            "image_folder_dataset", "transformers_dummy_dataset",
                            "transformers_prompt_dummy_dataset", "transformers_token_dummy_dataset"),
    "pre_process_data_config": ("huggingface_pre_process", "text_generation_huggingface_pre_process",
                                "tokenizer_pre_process", "ner_huggingface_preprocess",
                                "audio_classification_pre_process", "speech_transcription_pre_process",
                                "vision_vqa_pre_process", "skip_pre_process", "image_resizing", "image_filtering",
                                "auto_caption", "auto_tagging", "blip2_caption", "florence2_caption", "wd14_tagging",
                                "aspect_ratio_bucketing", "image_lora_preprocess"),
    "post_process_data_config": ("text_classification_post_process", "text_generation_post_process",
                                 "ner_post_process", "skip_post_process"),
    "dataloader_config": ("default_dataloader", "default_calibration_dataloader", "no_auto_batch_dataloader",
                          "dataloader_with_ignored_batch_fields", "vision_vqa_dataloader"),
}

# Allowed sub_types[].name per metric type, from the evaluator's catalog; None = any name.
METRIC_SUB_TYPES: dict[str, tuple[str, ...] | None] = {
    metric_type: (None if metric_type in OPEN_METRIC_TYPES else tuple(sub_types))
    for metric_type, sub_types in CATALOG.items()
}
USER_CONFIG_KEYS = ("user_script", "script_dir", "inference_settings", "shared_kv_buffer", "io_bind", "run_kwargs",
                    "evaluate_func", "evaluate_func_kwargs", "metric_func", "metric_func_kwargs")
EVALUATOR_TYPES = ("OnnxEvaluator", "ONNX", "PyTorchEvaluator", "PyTorch", "OpenVINOEvaluator", "OpenVINO",
                   "QNNEvaluator", "QNN", "LMEvaluator", "MTEBEvaluator")
_TYPE_ARG_EVALUATORS = ("LMEvaluator", "MTEBEvaluator")
_NAME = re.compile(r"^[A-Za-z0-9_]+$")


class DataComponent(StrictModel):
    """One step of a data config: a registered component name and its parameters."""

    type: str | None = Field(None, description="Registered component name; the container's default if unset.")
    params: dict[str, Any] = Field(default_factory=dict,
                                   description="Component parameters (may also be written next to type).")

    @model_validator(mode="before")
    @classmethod
    def _flat_params(cls, data: Any) -> Any:
        # Olive's DataComponentConfig moves keys other than type/params into params.
        if isinstance(data, dict) and any(key not in ("type", "params") for key in data):
            params = dict(data.get("params") or {})
            params.update({k: v for k, v in data.items() if k not in ("type", "params")})
            return {"type": data.get("type"), "params": params}
        return data


class DataConfig(StrictModel):
    """A dataset for calibration, evaluation or training, referenced by its name."""

    name: str = Field(description="Unique name that passes and metrics use to refer to this data "
                                  "(letters, digits and underscores only).",
                      json_schema_extra={"pattern": _NAME.pattern})
    type: str = Field("DataContainer", description="Data container: " + ", ".join(DATA_CONTAINERS) + ".")
    user_script: str | None = Field(None, description="Python file that registers custom data components.")
    script_dir: str | None = Field(None, description="Folder added to sys.path for user_script's imports.")
    load_dataset_config: DataComponent | None = Field(None, description="How to load the dataset.")
    pre_process_data_config: DataComponent | None = Field(None, description="How to tokenize/prepare samples.")
    post_process_data_config: DataComponent | None = Field(None, description="How to turn outputs into predictions.")
    dataloader_config: DataComponent | None = Field(None, description="How to batch samples.")

    @field_validator("name")
    @classmethod
    def _name_chars(cls, value: str) -> str:
        if not _NAME.match(value):  # Olive's rule (and its wording), since names are used in file paths
            raise ValueError(f"'{value}' should only contain letters, numbers and underscore")
        return value


if TYPE_CHECKING:  # by_kind builds the runtime type; checkers see the plain union
    DataConfigRef = str | DataConfig
else:
    DataConfigRef = by_kind(scalar=str, object=DataConfig)


class Goal(StrictModel):
    """A target for a sub-metric, used to rank search results and to stop early."""

    type: Literal["threshold", "min-improvement", "percent-min-improvement", "max-degradation",
                  "percent-max-degradation"] = Field(description="How value is compared with the input model.")
    value: float = Field(description="Threshold, or the allowed change (>= 0; percent goals are in (0, 100)).")


class SubMetric(StrictModel):
    """One measured quantity of a metric, reported as `<metric>-<sub type>`, e.g. latency-avg."""

    name: str = Field(description="Sub type: latency/throughput: avg, max, min, p50…p999; accuracy: "
                                  "accuracy_score, f1_score, …; size_on_disk: bytes; custom: any name.")
    priority: int = Field(-1, description="Rank used by the search (1 = most important); -1 = report only.")
    higher_is_better: bool | None = Field(None, description="Whether larger values are better; defaults per type.")
    goal: Goal | None = Field(None, description="Target value for this sub type.")
    metric_config: dict[str, Any] | None = Field(
        None, description="Per-sub-type settings, e.g. warmup_num and repeat_test_num for latency.")


class UserConfig(StrictModel):
    """Settings for how a metric runs the model; nest these here (Olive drops them when written flat)."""

    user_script: str | None = Field(None, description="Python file with evaluate_func / metric_func.")
    script_dir: str | None = Field(None, description="Folder added to sys.path for user_script's imports.")
    inference_settings: dict[str, Any] | None = Field(None, description="Per-framework inference settings.")
    shared_kv_buffer: bool = Field(False, description="Share the KV cache buffer between past and present.")
    io_bind: bool = Field(False, description="Bind inputs/outputs to the device with ORT IO binding.")
    run_kwargs: dict[str, Any] | None = Field(None, description="Extra keyword arguments for the model call.")
    evaluate_func: str | None = Field(None, description="custom: function that evaluates the model.")
    evaluate_func_kwargs: dict[str, Any] | None = Field(None, description="Keyword arguments for evaluate_func.")
    metric_func: str | None = Field(None, description="custom: function that computes the metric from outputs.")
    metric_func_kwargs: dict[str, Any] | None = Field(None, description="Keyword arguments for metric_func.")


class Metric(StrictModel):
    """A metric to measure on every candidate model."""

    name: str = Field(description="Metric name, unique within the evaluator; results read `<name>-<sub type>`.")
    type: Literal[METRIC_TYPES] = Field(  # type: ignore[valid-type]
        description="What to measure: latency (ms), throughput, accuracy, size_on_disk, custom (Olive's), or "
                    "ModelMill's llm (prefill_ms, decode_tokens_per_s, perplexity), memory (peak_mb), similarity "
                    "(cosine_mean, cosine_min, samples_per_s vs the PyTorch model) and lm_eval (an lm-eval task named "
                    "by the metric or metric_config.task, run offline; sub types are the task's metrics such as acc, "
                    "or * for all).")
    backend: Literal["torch_metrics", "huggingface_metrics"] = Field(
        "torch_metrics", description="Library that computes accuracy sub types (ignored for custom).")
    sub_types: list[SubMetric] = Field(description="The quantities to report, e.g. [{\"name\": \"avg\"}].")
    data_config: DataConfigRef | None = Field(None, description="Name of a data_configs entry (or an inline one).")
    user_config: UserConfig | None = Field(None, description="How to run the model for this metric.")


class Evaluator(StrictModel):
    """A set of metrics, referenced by name from `evaluator`."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, description="Filled in from the evaluators key.")
    type: Literal[EVALUATOR_TYPES] | None = Field(  # type: ignore[valid-type]
        None, description="Evaluator kind; unset picks the framework from the model. LMEvaluator runs "
                          "lm-eval-harness tasks (tasks, limit, batch_size, max_length, model_class, ...; offline: "
                          "local task data only), MTEBEvaluator MTEB embedding tasks.")
    metrics: list[Metric] = Field(default_factory=list, description="Metrics to measure.")
    user_script: str | None = Field(None, description="Python file that registers custom evaluators.")
    script_dir: str | None = Field(None, description="Folder added to sys.path for user_script's imports.")
    type_args: dict[str, Any] = Field(default_factory=dict,
                                      description="LMEvaluator/MTEBEvaluator options such as tasks, limit, batch_size.")

    @model_validator(mode="before")
    @classmethod
    def _type_args(cls, data: Any) -> Any:
        # Olive collects unknown keys into type_args; only the lm-eval/MTEB evaluators read them,
        # so elsewhere they stay put and are reported as unknown keys.
        if isinstance(data, dict) and data.get("type") in _TYPE_ARG_EVALUATORS:
            own = set(cls.model_fields)
            extra = {k: v for k, v in data.items() if k not in own}
            if extra:
                data = {k: v for k, v in data.items() if k in own}
                data["type_args"] = {**(data.get("type_args") or {}), **extra}
        return data


if TYPE_CHECKING:
    EvaluatorRef = str | Evaluator
else:
    EvaluatorRef = by_kind(scalar=str, object=Evaluator)
