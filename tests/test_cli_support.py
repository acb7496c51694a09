"""Shared argument types and the atomic writer of the sub-commands."""

from __future__ import annotations

import argparse
import os

import pytest

from controller.cli_support import fraction, positive_number, whole_number, write_atomic


@pytest.mark.parametrize("parse, good, bad", [
    (whole_number(0), {"0": 0, "7": 7}, ["-1", "1.5", "x", ""]),
    (whole_number(1), {"1": 1}, ["0"]),
    (positive_number, {"0.5": 0.5, "10": 10.0}, ["0", "-2", "nan", "x"]),
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
