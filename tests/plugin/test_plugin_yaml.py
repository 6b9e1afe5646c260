"""YAML details a spec author relies on: positions, merge keys for shared profile values,
duplicate keys caught."""

from __future__ import annotations

import pytest

from pytest_goni.yaml_positions import YamlLoadError, format_path, load_with_marks


def test_marks_give_the_line_and_column_of_every_value() -> None:
    data, marks = load_with_marks("a:\n  b: [1, 2]\n  c: {d: x}\n")
    assert data == {"a": {"b": [1, 2], "c": {"d": "x"}}}
    assert (marks[("a", "b", 1)].line, marks[("a", "b", 1)].col) == (2, 10)
    assert (marks[("a", "c", "d")].line, marks[("a", "c", "d")].col) == (3, 10)


def test_merge_keys_share_profile_values_and_own_keys_override() -> None:
    data, _ = load_with_marks("cpu: &base {a: 1, b: 2}\ngpu:\n  <<: *base\n  b: 3\n")
    assert data == {"cpu": {"a": 1, "b": 2}, "gpu": {"a": 1, "b": 3}}


def test_a_key_given_twice_is_an_error_with_its_line() -> None:
    with pytest.raises(YamlLoadError, match="duplicate key 'a'") as err:
        load_with_marks("a: 1\nb: 2\na: 3\n")
    assert err.value.line == 3


def test_key_paths_read_like_the_yaml() -> None:
    assert format_path(("gates", 3, "expect")) == "gates[3].expect"
    assert format_path(()) == "(top level)"
