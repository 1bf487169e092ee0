"""Atomic writes: whole files or nothing, usual permissions, no temporary files left behind."""

from __future__ import annotations

import os

import numpy as np
import pytest

from serkit.utils import atomic_savez, atomic_write_bytes, atomic_write_text


def test_atomic_write_replaces_whole_file(tmp_path):
    path = tmp_path / "sub" / "out.txt"
    atomic_write_text(path, "first")
    atomic_write_text(path, "second")
    assert path.read_text() == "second"
    assert [p.name for p in path.parent.iterdir()] == ["out.txt"]
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_failed_write_keeps_old_content(tmp_path, monkeypatch):
    path = tmp_path / "out.bin"
    atomic_write_bytes(path, b"old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_atomic_savez_round_trip(tmp_path):
    atomic_savez(tmp_path / "a.npz", x=np.arange(3))
    with np.load(tmp_path / "a.npz") as data:
        assert data["x"].tolist() == [0, 1, 2]


def test_replace_output_dir_keeps_the_old_run_when_the_new_one_fails(tmp_path):
    """Issue 15.7: an output folder is replaced whole on success, and left as it was on failure."""
    from serkit.errors import ConfigError
    from serkit.utils import OUTPUT_MARKER, check_output_dir, replace_output_dir

    out = tmp_path / "out"
    with replace_output_dir(out, kind="test") as tmp:
        (tmp / "old.txt").write_text("first run")
    assert (out / OUTPUT_MARKER).is_file() and (out / "old.txt").read_text() == "first run"
    with pytest.raises(RuntimeError), replace_output_dir(out, kind="test") as tmp:
        (tmp / "new.txt").write_text("half")
        raise RuntimeError("killed half way")
    assert sorted(p.name for p in out.iterdir()) == sorted([OUTPUT_MARKER, "old.txt"])
    with replace_output_dir(out, kind="test") as tmp:
        (tmp / "new.txt").write_text("second run")
    assert sorted(p.name for p in out.iterdir()) == sorted([OUTPUT_MARKER, "new.txt"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary folders left
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not written by serkit test"):
        check_output_dir(foreign, kind="test")
    check_output_dir(foreign, kind="test", force=True)
