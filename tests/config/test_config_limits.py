"""Bounded loading (modelmill.config.limits): alias bombs, unbounded files and deep nesting are one clear
error each, at once, in `validate`, `run` and the parser, never a hang, a memory spike or a traceback."""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

import pytest

from modelmill.cli import main
from modelmill.config import limits, load_document, parse_document
from modelmill.errors import ConfigError

# 469 bytes, nine levels of nine aliases: 9^9 (about 4 * 10^8) strings once expanded.
ALIAS_BOMB = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{n}: &{n} [{','.join(['*' + p] * 9)}]" for p, n in zip("abcdefgh", "bcdefghi")]) + "\n"
# six levels, through merge keys and flow mappings (10^6 values).
MERGE_BOMB = "\n".join(["x0: &x0 {k0: v, k1: v, k2: v, k3: v, k4: v, k5: v, k6: v, k7: v, k8: v, k9: v}"]
                       + [f"x{i}: &x{i} [{', '.join(['*x' + str(i - 1)] * 10)}]" for i in range(1, 6)]) + "\n"
DEEP_JSON = "[" * 10_000 + "]" * 10_000
DEEP_YAML = "a: " + "[" * 10_000 + "]" * 10_000 + "\n"
DEEP_BLOCK_YAML = "".join(" " * i + "a:\n" for i in range(300)) + " " * 300 + "a: 1\n"
BOMBS = {"alias": ALIAS_BOMB, "merge": MERGE_BOMB, "deep_json": DEEP_JSON, "deep_yaml": DEEP_YAML,
         "deep_block_yaml": DEEP_BLOCK_YAML}


def _fmt(name: str) -> str:
    return "json" if name.endswith("json") else "yaml"


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_bombs_are_one_syntax_error_at_once(name: str) -> None:
    text = BOMBS[name]
    started = time.process_time()  # CPU time: not inflated by the other processes on a loaded machine
    doc = parse_document(text, f"bomb.{_fmt(name)}")
    assert time.process_time() - started < 2
    assert doc.root is None and len(doc.syntax) == 1 and doc.syntax[0].severity == "error"
    assert ("alias" in doc.syntax[0].message) == (name in ("alias", "merge"))
    assert "nests" in doc.syntax[0].message or "alias" in doc.syntax[0].message


def test_the_alias_bomb_is_small_and_the_limits_leave_real_anchors_alone() -> None:
    assert len(ALIAS_BOMB.encode()) <= 469
    text = ("common: &ep [CPUExecutionProvider]\nsystems:\n  local:\n    type: LocalSystem\n    accelerators:\n"
            "      - {device: cpu, execution_providers: *ep}\n      - {device: cpu, execution_providers: *ep}\n")
    doc = parse_document(text, "c.yaml")
    assert doc.syntax == []
    assert doc.data["systems"]["local"]["accelerators"][1]["execution_providers"] == ["CPUExecutionProvider"]


def test_nesting_at_the_limit_is_fine_and_one_more_level_is_not() -> None:
    ok = "[" * limits.MAX_DEPTH + "]" * limits.MAX_DEPTH
    deep = "[" * (limits.MAX_DEPTH + 1) + "]" * (limits.MAX_DEPTH + 1)
    assert not [d for d in parse_document(ok, "x.json").syntax if "nests" in d.message]
    problem = parse_document(deep, "x.json").syntax
    assert len(problem) == 1 and problem[0].range.start.col == limits.MAX_DEPTH
    brackets_in_strings = '{"a": "' + "[" * 500 + '"}'
    assert parse_document(brackets_in_strings, "x.json").syntax == []


def test_a_text_over_the_size_limit_is_not_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MAX_CONFIG_BYTES", 1000)
    text = '{"passes": {}, "pad": "' + "x" * 2000 + '"}'
    for fmt in ("json", "yaml"):
        doc = parse_document(text, f"x.{fmt}")
        assert doc.root is None and "limit" in doc.syntax[0].message


# ------------------------------------------------------------------ reading files


def test_a_symlink_to_dev_zero_fails_at_once(tmp_path: Path) -> None:
    config = tmp_path / "olive.json"
    config.symlink_to("/dev/zero")
    with pytest.raises(ConfigError, match="not a regular file") as info:  # refused before any read
        load_document(config)
    assert info.value.where == str(config) and info.value.fix


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "olive.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        limits.read_config_text(fifo)


def test_folders_big_files_and_binary_files_are_one_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "dir.json"
    folder.mkdir()
    with pytest.raises(ConfigError, match="folder"):
        load_document(folder)
    binary = tmp_path / "model.json"
    binary.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ConfigError, match="not a text file: byte 0x80 at offset 128"):
        load_document(binary)
    zeros = tmp_path / "zeros.yaml"
    zeros.write_bytes(b"a: 1\n\x00\x00")
    with pytest.raises(ConfigError, match="NUL"):
        load_document(zeros)
    monkeypatch.setattr(limits, "MAX_CONFIG_BYTES", 100)
    big = tmp_path / "big.json"
    big.write_text('{"a": "' + "x" * 200 + '"}')
    with pytest.raises(ConfigError, match="more than the"):
        load_document(big)


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize("case", ["zero", "binary", "alias", "deep_json"])
def test_cli_answers_each_with_one_error_and_a_nonzero_exit(command: str, case: str, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / ("olive.yaml" if case == "alias" else "olive.json")
    if case == "zero":
        config.symlink_to("/dev/zero")
    elif case == "binary":
        config.write_bytes(bytes(range(256)))
    else:
        config.write_text(BOMBS[case])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.process_time()
    code = main([command, "--config", str(config)] if command == "run" else [command, str(config)])
    assert time.process_time() - started < 5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KB: no blow-up
    out = capsys.readouterr()
    text = out.out + out.err
    assert code != 0 and "Traceback" not in text and str(config.name) in text
    problem_lines = [line for line in text.splitlines() if str(config.name) in line and "error" in line]
    assert problem_lines, text
    assert any(word in text for word in ("regular file", "not a text file", "alias", "nests"))


def test_only_values_added_by_aliases_count() -> None:
    many = "passes: {}\nvalues: [" + ", ".join(str(i) for i in range(limits.MAX_YAML_ALIAS_VALUES + 5000)) + "]\n"
    assert parse_document(many, "c.yaml").syntax == []
    row = "[" + ", ".join(["1"] * 99) + "]"  # 100 values, repeated by aliases
    near = f"row: &r {row}\nrows: [{', '.join(['*r'] * 90)}]\n"  # adds 90 * 100 values
    over = f"row: &r {row}\nrows: [{', '.join(['*r'] * 110)}]\n"  # adds 110 * 100 values
    assert parse_document(near, "c.yaml").syntax == []
    assert "alias" in parse_document(over, "c.yaml").syntax[0].message


def test_a_cascade_of_syntax_problems_is_listed_up_to_the_limit_then_summarised() -> None:
    text = '{"passes": ' + "[{" * 5_000  # each '{' then '[' is one more problem
    syntax = parse_document(text, "olive_config.json").syntax
    assert len(syntax) == limits.MAX_SYNTAX_PROBLEMS + 1
    offsets = [d.range.start.offset for d in syntax]
    assert offsets == sorted(offsets)
    summary = syntax[-1]
    assert summary.message.endswith("more syntax problems from here on are not listed")
    assert int(summary.message.split()[0]) > 5_000 and "missing bracket" in (summary.hint or "")


def test_a_few_syntax_problems_are_all_listed() -> None:
    syntax = parse_document('{"a": 1 "b": 2, "c": }', "olive_config.json").syntax
    assert 1 <= len(syntax) < limits.MAX_SYNTAX_PROBLEMS
    assert not any("not listed" in d.message for d in syntax)
