"""Session tuning for ORT GenAI folders: time a few ONNX Runtime session settings on this machine for the model
just built, and write the fastest into ``genai_config.json`` (``model.decoder.session_options``).

Why: onnxruntime-genai 0.18 gives the decoder session ``hardware_concurrency() / 2`` intra-op threads
(``Model::CreateSessionOptionsFromConfig``), i.e. one thread on a 2-vCPU machine, and ORT's defaults for the
rest. Which setting is fastest depends on the machine (core count, SMT, other load), so it is measured here,
not guessed.

What genai 0.18 passes through (its ``SessionOptions_Element``): ``intra_op_num_threads``,
``inter_op_num_threads``, ``enable_cpu_mem_arena``, ``enable_mem_pattern``, ``graph_optimization_level``, log and
profiling keys, and any other string key as an ORT session config entry (``AddConfigEntry``), e.g.
``session.intra_op.allow_spinning``. The candidates: the folder as written (genai's default), all usable
CPUs as intra-op threads, the same without spinning, and (on 4+ CPUs) the physical-core count.
``inter_op_num_threads`` is not tried: genai offers no parallel execution mode and ORT's sequential executor
never uses the inter-op pool. Memory arena / pattern and graph optimization level change allocations, not
the MatMulNBits/GQA kernels that take the time, and are left at ORT's defaults.

How: every candidate is loaded once (``og.Config.overlay``, nothing written while measuring), then rounds of
one probe per candidate, interleaved so that a burst of load elsewhere hits all of them, until ``rounds``
rounds or the time budget are done. A probe prefills ``prompt_tokens`` tokens and decodes ``new_tokens``;
its score is the probe's wall time. The winner must beat the folder as written by ``min_gain`` (median of
rounds) or nothing changes: tuning never makes the output slower than the builder's.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

DEFAULT_CANDIDATE = "as built"
Progress = Callable[[float, str], None]


@dataclass
class Trial:
    """One candidate setting and its probe timings (seconds per round)."""

    name: str
    session_options: dict[str, Any]
    prefill_s: list[float] = field(default_factory=list)
    decode_s: list[float] = field(default_factory=list)

    @property
    def score(self) -> float:
        """Median probe wall time (prefill + decode); lower is better."""
        return statistics.median(p + d for p, d in zip(self.prefill_s, self.decode_s)) if self.prefill_s else \
            float("inf")

    def to_json(self, prompt_tokens: int, new_tokens: int) -> dict[str, Any]:
        prefill = statistics.median(self.prefill_s) if self.prefill_s else None
        decode = statistics.median(self.decode_s) if self.decode_s else None
        return {"name": self.name, "session_options": self.session_options, "rounds": len(self.prefill_s),
                "probe_s": round(self.score, 4) if self.prefill_s else None,
                "prefill_tokens_per_s": round(prompt_tokens / prefill, 1) if prefill else None,
                "decode_tokens_per_s": round((new_tokens - 1) / decode, 1) if decode else None}


@dataclass
class TuningResult:
    chosen: str
    session_options: dict[str, Any]
    trials: list[Trial]
    prompt_tokens: int
    new_tokens: int
    duration_s: float
    cpus: int
    note: str = ""
    other_load: float | None = None
    """CPUs' worth of work other processes did while the candidates were timed (None where unknown)."""

    @property
    def machine_busy(self) -> bool:
        """True when other processes took enough CPU to skew the timings (threads compete with them)."""
        return self.other_load is not None and self.other_load > BUSY_CPUS

    def to_json(self) -> dict[str, Any]:
        return {"chosen": self.chosen, "written_session_options": self.session_options, "cpus": self.cpus,
                "probe": {"prompt_tokens": self.prompt_tokens, "new_tokens": self.new_tokens},
                "trials": [t.to_json(self.prompt_tokens, self.new_tokens) for t in self.trials],
                "duration_s": round(self.duration_s, 2), "note": self.note,
                "other_load_cpus": None if self.other_load is None else round(self.other_load, 2),
                "machine_busy": self.machine_busy}


BUSY_CPUS = 0.5
"""Other processes' average CPU use while timing above which the result is flagged: a thread count chosen on a
busy machine favours fewer threads than the same machine idle needs."""


def _busy_ticks() -> int | None:
    """All CPUs' non-idle time since boot, in clock ticks (/proc/stat); None where unknown."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    except (OSError, ValueError):
        return None
    return user + nice + system + irq + softirq + steal


def other_load(busy_before: int | None, own_before: float, wall_s: float) -> float | None:
    """CPUs' worth of work done by other processes since ``busy_before`` (from /proc/stat minus this process's
    own CPU time), averaged over ``wall_s``."""
    busy_after = _busy_ticks()
    if busy_before is None or busy_after is None or wall_s <= 0:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    own = sum(os.times()[:2]) - own_before
    return max(0.0, ((busy_after - busy_before) / ticks - own) / wall_s)


def usable_cpus() -> int:
    """CPUs this process may run on (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def physical_cores() -> int | None:
    """Distinct (package, core) pairs in /proc/cpuinfo; None where unknown."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    cores, package = set(), "0"
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "physical id":
            package = value.strip()
        elif key == "core id":
            cores.add((package, value.strip()))
    return len(cores) or None


def machine_fingerprint() -> dict[str, Any]:
    """What tuned session options depend on: CPU model, usable CPUs, physical cores, architecture."""
    import platform

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    return {"cpu": model or platform.processor(), "cpus": usable_cpus(), "cores": physical_cores(),
            "arch": platform.machine()}


def candidates(cpus: int, cores: int | None) -> list[tuple[str, dict[str, Any]]]:
    """The settings to time, the folder as written first."""
    result: list[tuple[str, dict[str, Any]]] = [(DEFAULT_CANDIDATE, {})]
    result.append((f"intra_op {cpus}", {"intra_op_num_threads": cpus}))
    result.append((f"intra_op {cpus}, no spinning",
                   {"intra_op_num_threads": cpus, "session.intra_op.allow_spinning": "0"}))
    if cores and 2 <= cores < cpus and cpus >= 4:
        result.append((f"intra_op {cores} (physical cores)", {"intra_op_num_threads": cores}))
    return result


def tune(folder: Path, *, budget_s: float = 20.0, rounds: int = 3, prompt_tokens: int = 64, new_tokens: int = 32,
         min_gain: float = 0.03, progress: Progress | None = None, write: bool = True) -> TuningResult:
    """Time the candidates for the ORT GenAI model in ``folder`` and (``write``) merge the fastest into its
    genai_config.json. Only the CPU execution provider is tuned; other providers' folders are left alone."""
    import onnxruntime_genai as og

    report = progress or (lambda fraction, message: None)
    started = time.perf_counter()
    config_path = folder / "genai_config.json"
    config = json.loads(config_path.read_text())
    written = _session_options(config)
    cpus, cores = usable_cpus(), physical_cores()
    vocab = int(config["model"].get("vocab_size") or 0)
    context = int(config["model"].get("context_length") or 0)
    prompt_tokens, new_tokens = _fit(prompt_tokens, new_tokens, context)
    providers = written.get("provider_options") or []
    if providers or vocab <= 0:
        return TuningResult(DEFAULT_CANDIDATE, {}, [], prompt_tokens, new_tokens, time.perf_counter() - started, cpus,
                            note="not tuned: only CPU-provider folders are tuned" if providers else
                            "not tuned: genai_config.json has no vocab_size")
    trials = [Trial(name, options) for name, options in candidates(cpus, cores)]
    report(0.0, f"session tuning: loading {len(trials)} candidate settings")
    models = [_load(og, folder, trial.session_options) for trial in trials]
    prompt = probe_prompt(vocab, prompt_tokens, config["model"])
    for model in models:  # warm-up: first-run allocations and kernel caches
        probe(og, model, prompt, 2)
    load_s = time.perf_counter() - started
    busy_before, own_before, timing_started = _busy_ticks(), sum(os.times()[:2]), time.perf_counter()
    done = 0
    for round_index in range(rounds):
        for trial, model in zip(trials, models):
            prefill, decode = probe(og, model, prompt, new_tokens)
            trial.prefill_s.append(prefill)
            trial.decode_s.append(decode)
        done += 1
        elapsed = time.perf_counter() - started
        report(done / rounds, f"session tuning: round {done}/{rounds}, best so far "
                              f"{min(trials, key=lambda t: t.score).name}")
        per_round = (elapsed - load_s) / done
        if round_index + 1 < rounds and elapsed + per_round > budget_s and done >= 1:
            break
    others = other_load(busy_before, own_before, time.perf_counter() - timing_started)
    del models
    baseline = trials[0]
    best = min(trials, key=lambda t: t.score)
    note = ""
    if best is not baseline and best.score > baseline.score * (1 - min_gain):
        note = (f"kept the builder's settings: the best candidate ({best.name}) was within {min_gain:.0%} of them "
                f"(noise)")
        best = baseline
    if write and best.session_options:
        write_session_options(config_path, best.session_options)
    return TuningResult(best.name, best.session_options, trials, prompt_tokens, new_tokens,
                        time.perf_counter() - started, cpus, note, others)


def write_session_options(config_path: Path, options: dict[str, Any]) -> None:
    config = json.loads(config_path.read_text())
    _session_options(config).update(options)
    config_path.write_text(json.dumps(config, indent=4))


def _session_options(config: dict[str, Any]) -> dict[str, Any]:
    decoder = config.setdefault("model", {}).setdefault("decoder", {})
    return decoder.setdefault("session_options", {})


def _fit(prompt_tokens: int, new_tokens: int, context: int) -> tuple[int, int]:
    """Shrink the probe for models with a short context (tiny test models)."""
    if context and prompt_tokens + new_tokens + 2 > context:
        prompt_tokens = max(2, context // 2)
        new_tokens = max(2, min(new_tokens, context - prompt_tokens - 2))
    return prompt_tokens, new_tokens


def _load(og: Any, folder: Path, session_options: dict[str, Any]) -> Any:
    config = og.Config(str(folder))
    if session_options:
        config.overlay(json.dumps({"model": {"decoder": {"session_options": session_options}}}))
    return og.Model(config)


def probe_prompt(vocab: int, length: int, model_config: dict[str, Any]) -> Any:
    """A fixed, deterministic token sequence (speed does not depend on which tokens)."""
    import numpy as np

    special = {model_config.get(key) for key in ("bos_token_id", "pad_token_id")}
    eos = model_config.get("eos_token_id")
    special.update(eos if isinstance(eos, list) else [eos])
    ids = [(i * 7919 + 13) % vocab for i in range(length * 2)]
    ids = [i for i in ids if i not in special][:length]
    return np.asarray(ids, dtype=np.int32)


def probe(og: Any, model: Any, prompt: Any, new_tokens: int) -> tuple[float, float]:
    """(prefill seconds, decode seconds) of one greedy generation; decode counts new_tokens - 1 steps."""
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(prompt) + new_tokens, min_length=len(prompt) + new_tokens)
    generator = og.Generator(model, params)
    start = time.perf_counter()
    generator.append_tokens(prompt)
    generator.generate_next_token()
    prefilled = time.perf_counter()
    while not generator.is_done():
        generator.generate_next_token()
    return prefilled - start, time.perf_counter() - prefilled
