"""The tolerant JSON parser, the YAML conversion, and ranges by key path."""

from __future__ import annotations

from modelmill.config.document import parse_document
from modelmill.config.positions import parse_json, parse_yaml


def _start(rng):  # (line, col), 0-based
    return rng.start.line, rng.start.col


def test_json_ranges_of_keys_and_values() -> None:
    text = '{\n  "passes": {\n    "quant": {"type": "X", "block_size": 32}\n  },\n  "ü": [1, 2.5, null]\n}\n'
    doc = parse_document(text, "c.json")
    assert doc.syntax == []
    assert doc.data == {"passes": {"quant": {"type": "X", "block_size": 32}}, "ü": [1, 2.5, None]}
    assert _start(doc.range_of(("passes", "quant", "block_size"))) == (2, 41)
    assert _start(doc.range_of(("passes", "quant", "block_size"), key=True)) == (2, 27)
    value = doc.range_of(("passes", "quant", "type"))
    assert text[value.start.offset:value.end.offset] == '"X"'
    assert _start(doc.range_of(("ü", 1))) == (4, 11)


def test_range_falls_back_to_nearest_ancestor() -> None:
    doc = parse_document('{"passes": {"q": {"type": "X"}}}', "c.json")
    assert doc.range_of(("passes", "q", "missing", "deeper")) == doc.range_of(("passes", "q"))
    assert doc.range_of(("passes", "q", "missing"), key=True) == doc.range_of(("passes", "q"), key=True)
    assert doc.range_of(("nothing",)) == doc.root.range


def test_missing_comma_is_reported_where_the_next_key_starts() -> None:
    text = '{\n  "a": 1\n  "b": {"c": 2}\n}'
    doc = parse_document(text, "c.json")
    assert [(d.code, _start(d.range)) for d in doc.syntax] == [("syntax", (2, 2))]
    assert "expected ','" in doc.syntax[0].message
    assert doc.data == {"a": 1, "b": {"c": 2}}  # recovered: later keys keep their positions too
    assert _start(doc.range_of(("b", "c"))) == (2, 13)


def test_unclosed_brace_keeps_everything_parsed_so_far() -> None:
    text = '{\n  "input_model": {"type": "HfModel"},\n  "passes": {\n    "q": {"type": "X"'
    doc = parse_document(text, "c.json")
    assert len(doc.syntax) == 1
    issue = doc.syntax[0]
    assert _start(issue.range) == (3, 21)  # the end of the text
    assert "line 4, column 10" in issue.message  # the innermost unclosed '{'
    assert doc.data == {"input_model": {"type": "HfModel"}, "passes": {"q": {"type": "X"}}}
    assert _start(doc.range_of(("input_model", "type"))) == (1, 26)


def test_other_json_mistakes_are_reported_and_skipped() -> None:
    text = '{"a": [1, 2,], // note\n "b": tru, \'c\': 3} trailing'
    root, issues = parse_json(text)
    messages = [issue.message for issue in issues]
    assert any("trailing comma" in m for m in messages)
    assert any("comments are not allowed" in m for m in messages)
    assert any("unexpected word 'tru'" in m for m in messages)
    assert any("double quotes" in m for m in messages)
    assert any("after the end" in m for m in messages)
    from modelmill.config.positions import to_data
    assert to_data(root) == {"a": [1, 2], "b": "tru", "c": 3}


def test_missing_value_and_colon() -> None:
    doc = parse_document('{"a": , "b" 2, "c": 3}', "c.json")
    assert [_start(d.range) for d in doc.syntax] == [(0, 6), (0, 12)]
    assert doc.data == {"b": 2, "c": 3}


def test_duplicate_keys_warn() -> None:
    doc = parse_document('{"a": 1, "a": 2}', "c.json")
    assert [(d.severity, d.code, _start(d.range)) for d in doc.syntax] == [("warning", "duplicate-key", (0, 9))]
    assert doc.data == {"a": 2}


def test_empty_text() -> None:
    assert parse_document("", "c.json").syntax[0].message.startswith("the file is empty")
    assert parse_document("  \n", "c.yaml").root is None


def test_yaml_ranges() -> None:
    text = "# comment\ninput_model:\n  type: HfModel\npasses:\n  q:\n    type: X\n    block_size: 32\n"
    doc = parse_document(text, "c.yaml")
    assert doc.format == "yaml" and doc.syntax == []
    assert doc.data == {"input_model": {"type": "HfModel"}, "passes": {"q": {"type": "X", "block_size": 32}}}
    assert _start(doc.range_of(("passes", "q", "block_size"))) == (6, 16)
    assert _start(doc.range_of(("passes", "q", "block_size"), key=True)) == (6, 4)


def test_yaml_syntax_error_keeps_the_lines_above() -> None:
    text = "input_model:\n  type: HfModel\npasses:\n  q: {type: X\nevaluator: e\n"
    doc = parse_document(text, "c.yaml")
    assert len(doc.syntax) == 1 and doc.syntax[0].code == "syntax"
    assert doc.syntax[0].range.start.line == 4
    assert doc.data["input_model"] == {"type": "HfModel"}
    assert _start(doc.range_of(("input_model", "type"))) == (1, 8)


def test_yaml_merge_keys_and_aliases() -> None:
    text = "base: &b\n  type: X\n  bits: 4\npasses:\n  q:\n    <<: *b\n    bits: 8\n"
    assert parse_document(text, "c.yaml").data["passes"] == {"q": {"type": "X", "bits": 8}}


def test_path_at_position() -> None:
    doc = parse_document('{\n  "passes": {"q": {"type": "ModelBuilder"}}\n}', "c.json")
    assert doc.path_at(1, 30) == ("passes", "q", "type")
    assert doc.path_at(1, 4) == ("passes",)


def _tree(node: object) -> object:
    """A node tree as plain values, with every range's offsets, lines and columns."""
    from modelmill.config.positions import ArrayNode, ObjectNode, Range

    def where(rng: Range) -> tuple[int, ...]:
        return rng.start.offset, rng.end.offset, rng.start.line, rng.start.col, rng.end.line, rng.end.col

    if isinstance(node, ObjectNode):
        return where(node.range), [(e.key, where(e.key_range), _tree(e.value)) for e in node.entries]
    if isinstance(node, ArrayNode):
        return where(node.range), [_tree(item) for item in node.items]
    return None if node is None else (where(node.range), node.value)  # type: ignore[attr-defined]


def test_a_parse_that_reads_on_from_an_earlier_version_equals_a_full_parse() -> None:
    import json
    import random

    rng = random.Random(7)
    base = json.dumps({"input_model": {"type": "HfModel"}, "passes": {f"p{i}": {"type": "X", "bits": [4, 8]}
                                                                      for i in range(30)}, "output_dir": "o"},
                      indent=2)
    text = base
    parse_json(text)
    for _ in range(300):  # an editor's versions: each one an edit of the one before
        at = rng.randrange(len(text) + 1)
        text = (text[:at] + rng.choice(['"', ",", "}", "]", "x", "\n", '"k": 1,', "[", ":"]) + text[at:]
                if rng.random() < 0.6 else text[:at] + text[at + rng.randint(1, 6):])
        if rng.random() < 0.1:
            text = base
        again, fresh = parse_json(text), parse_json(text, reuse=False)
        assert _tree(again[0]) == _tree(fresh[0])
        assert [(i.message, i.range, i.severity) for i in again[1]] == [(i.message, i.range, i.severity)
                                                                         for i in fresh[1]]


def test_a_yaml_parse_that_reads_on_from_an_earlier_version_equals_a_full_parse() -> None:
    import random

    rng = random.Random(11)
    base = "input_model:\n  type: HfModel\n  model_path: m\n" + "".join(
        f"section_{i}:\n  # note\n  p{i}:\n    type: X\n    bits: [4, 8]\n    name: 'n{i}'\n" for i in range(12)) + \
        "output_dir: out\n"
    from modelmill.config.positions import ObjectNode

    text, reused = base, 0
    before = parse_yaml(text)[0]
    for _ in range(300):  # an editor's versions: each one an edit of the one before
        at = rng.randrange(len(text) + 1)
        typed = rng.choice(["x", "1", " ", ":", "-", "\n", "\nk: v\n", "'", "[", "#"]) if rng.random() < 0.3 else "x"
        text = text[:at] + typed + text[at:] if rng.random() < 0.9 else text[:at] + text[at + rng.randint(1, 4):]
        if rng.random() < 0.1:
            text = base
        again, fresh = parse_yaml(text), parse_yaml(text, reuse=False)
        assert _tree(again[0]) == _tree(fresh[0])
        assert [(i.message, i.range, i.severity) for i in again[1]] == [(i.message, i.range, i.severity)
                                                                         for i in fresh[1]]
        if isinstance(again[0], ObjectNode) and isinstance(before, ObjectNode) and again[0].entries and \
                before.entries and again[0].entries[0] is before.entries[0]:
            reused += 1  # read on: the entries above the change are the earlier tree's
        before = fresh[0]  # the parse kept last, which the next version reads on from
    assert reused > 20
