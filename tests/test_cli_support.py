"""Shared argument types and the atomic writer of the sub-commands."""

from __future__ import annotations

import argparse
import os

import pytest

from controller.cli_support import (
    DuplicateKeyError,
    check_outputs,
    duration,
    fraction,
    loads_json,
    positive_number,
    whole_number,
    write_all_atomic,
    write_atomic,
)
from controller.errors import InputError


@pytest.mark.parametrize("parse, good, bad", [
    (whole_number(0), {"0": 0, "7": 7}, ["-1", "1.5", "x", ""]),
    (whole_number(1), {"1": 1}, ["0"]),
    (positive_number, {"0.5": 0.5, "10": 10.0}, ["0", "-2", "nan", "inf", "x"]),
    (fraction, {"0.995": 0.995}, ["0", "1", "1.5", "nan"]),
])
def test_argument_types(parse, good, bad):
    for text, value in good.items():
        assert parse(text) == value
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)


def test_write_atomic_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "out.json"
    write_atomic(target, "first")
    assert target.read_text() == "first"

    def failing_replace(src, dst):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        write_atomic(target, "second")
    assert target.read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_write_atomic_refuses_a_directory(tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(InputError, match="directory"):
        write_atomic(tmp_path / "out", "x")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_write_all_atomic_replaces_nothing_unless_all_can_be_written(tmp_path):
    first = tmp_path / "a.csv"
    first.write_text("OLD")
    with pytest.raises(InputError):
        write_all_atomic([(first, "NEW"), (tmp_path / "missing" / "b.csv", "NEW")])
    assert first.read_text() == "OLD"
    assert [p.name for p in tmp_path.iterdir()] == ["a.csv"]
    write_all_atomic([(first, "NEW"), (tmp_path / "b.csv", "NEW")])
    assert first.read_text() == (tmp_path / "b.csv").read_text() == "NEW"


def test_check_outputs(tmp_path):
    src = tmp_path / "in.json"
    src.write_text("{}")
    link = tmp_path / "link.json"
    link.symlink_to(src)
    check_outputs([("-o", tmp_path / "new.json")], [("PROBLEM", src)])
    for outputs in ([("-o", src)], [("-o", link)], [("-o", tmp_path)],
                    [("-o", tmp_path / "no" / "x")],
                    [("--a", tmp_path / "x"), ("--b", tmp_path / "." / "x")]):
        with pytest.raises(InputError) as exc:
            check_outputs(outputs, [("PROBLEM", src)])
        assert exc.value.code == "BAD_OUTPUT"


def test_loads_json_refuses_a_key_named_twice():
    assert loads_json('{"a": {"b": 1}, "c": [{"b": 2}]}') == {"a": {"b": 1}, "c": [{"b": 2}]}
    for text in ('{"a": 1, "a": 1}', '{"x": [{"b": 1, "b": 2}]}'):
        with pytest.raises(DuplicateKeyError):
            loads_json(text)


def test_duration_is_finite_and_bounded():
    parse = duration(60)
    assert parse("60") == 60.0
    for text in ("inf", "61", "0", "nan", "-1"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)
