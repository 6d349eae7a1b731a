"""Measured metric values and per-model evaluation results (JSON-serialisable)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass
class MetricValue:
    """One measured quantity, reported under ``key`` = ``<metric>-<sub_type>`` as Olive does (e.g. latency-avg)."""

    metric: str
    sub_type: str
    value: float
    unit: str = ""
    higher_is_better: bool = True
    priority: int = -1
    goal: dict[str, Any] | None = None
    metric_type: str = ""

    @property
    def key(self) -> str:
        return f"{self.metric}-{self.sub_type}"

    @property
    def ranked(self) -> bool:
        """True when the search ranks on this value (priority >= 1); -1 means report only."""
        return self.priority >= 1

    def to_json(self) -> dict[str, Any]:
        value: float | None = float(self.value)
        if not math.isfinite(value):
            value = None  # JSON has no NaN/inf
        return {"key": self.key, "metric": self.metric, "sub_type": self.sub_type, "metric_type": self.metric_type,
                "value": value, "unit": self.unit, "higher_is_better": self.higher_is_better,
                "priority": self.priority, "goal": self.goal}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "MetricValue":
        value = data.get("value")
        return cls(metric=data["metric"], sub_type=data["sub_type"],
                   value=float("nan") if value is None else float(value), unit=data.get("unit", ""),
                   higher_is_better=bool(data.get("higher_is_better", True)), priority=int(data.get("priority", -1)),
                   goal=data.get("goal"), metric_type=data.get("metric_type", ""))


@dataclass
class EvaluationResult:
    """All values measured on one model."""

    model_path: str
    values: list[MetricValue] = field(default_factory=list)
    duration_s: float = 0.0
    model_kind: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    """What a metric reports beyond its numbers, by kind: ``lm_eval`` holds lm-eval's own results."""

    def by_key(self) -> dict[str, MetricValue]:
        return {value.key: value for value in self.values}

    def get(self, key: str) -> float | None:
        """The value of ``<metric>-<sub_type>``, or None when it was not measured."""
        found = self.by_key().get(key)
        return None if found is None else found.value

    def to_json(self) -> dict[str, Any]:
        data = {"model_path": self.model_path, "model_kind": self.model_kind, "duration_s": round(self.duration_s, 3),
                "values": [value.to_json() for value in self.values],
                "metrics": {value.key: value.to_json()["value"] for value in self.values}}
        if self.details:
            data["details"] = self.details
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "EvaluationResult":
        return cls(model_path=data["model_path"], values=[MetricValue.from_json(v) for v in data.get("values", [])],
                   duration_s=float(data.get("duration_s", 0.0)), model_kind=data.get("model_kind", ""),
                   details=dict(data.get("details") or {}))
