"""Atomic writes of agent configs (launcher/atomic.py): backup, mode, idempotence, crash safety."""
from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from launcher import atomic
from launcher.errors import RuntimeFailure


def _others(directory, name):
    return sorted(p.name for p in directory.iterdir() if p.name != name)


def test_new_file_then_change_makes_a_timestamped_backup(tmp_path):
    f = tmp_path / "sub" / "opencode.json"
    r1 = atomic.write_atomic(f, "one", clock=lambda: 1_700_000_000)
    assert r1.changed and r1.backup is None and f.read_text() == "one"
    r2 = atomic.write_atomic(f, "two", clock=lambda: 1_700_000_000)
    assert r2.changed and f.read_text() == "two"
    assert r2.backup is not None and r2.backup.read_text() == "one"
    assert r2.backup.name.startswith("opencode.json.bak-20")
    r3 = atomic.write_atomic(f, "three", clock=lambda: 1_700_000_000)  # same second: another name
    assert r3.backup != r2.backup and r3.backup.read_text() == "two"


def test_many_changes_within_one_second_keep_every_backup(tmp_path):
    f = tmp_path / "opencode.json"
    for i in range(6):
        atomic.write_atomic(f, f"v{i}", clock=lambda: 1_700_000_000)
    backups = sorted(p for p in tmp_path.iterdir() if ".bak-" in p.name)
    assert sorted(p.read_text() for p in backups) == [f"v{i}" for i in range(5)]  # none overwritten


def test_unchanged_content_writes_nothing(tmp_path):
    f = tmp_path / "c.json"
    f.write_text("same")
    os.utime(f, (1000, 1000))
    r = atomic.write_atomic(f, "same")
    assert not r.changed and r.backup is None
    assert f.stat().st_mtime == 1000
    assert _others(tmp_path, "c.json") == []


def test_mode_is_kept(tmp_path):
    f = tmp_path / "c.json"
    f.write_text("old")
    f.chmod(0o600)
    atomic.write_atomic(f, "new")
    assert f.stat().st_mode & 0o777 == 0o600


def test_symlink_target_is_replaced_and_the_link_kept(tmp_path):
    real = tmp_path / "dotfiles" / "opencode.json"
    real.parent.mkdir()
    real.write_text("old")
    link = tmp_path / "opencode.json"
    link.symlink_to(real)
    atomic.write_atomic(link, "new")
    assert link.is_symlink() and real.read_text() == "new"


@pytest.mark.parametrize("where", ["replace", "fsync", "write"])
def test_a_crash_mid_write_leaves_the_old_file_intact(tmp_path, monkeypatch, where):
    f = tmp_path / "opencode.json"
    f.write_text('{"old": true}')

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    if where == "replace":
        monkeypatch.setattr(atomic.os, "replace", boom)
    elif where == "fsync":
        monkeypatch.setattr(atomic.os, "fsync", boom)
    else:
        real_fdopen = os.fdopen

        class Failing:
            def __init__(self, fh):
                self.fh = fh

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.fh.close()

            def write(self, data):
                self.fh.write(data[: len(data) // 2])
                raise OSError(28, "No space left on device")

        monkeypatch.setattr(atomic.os, "fdopen", lambda fd, mode: Failing(real_fdopen(fd, mode)))
    with pytest.raises(RuntimeFailure) as exc:
        atomic.write_atomic(f, '{"new": true}')
    assert str(f) in exc.value.render()
    assert f.read_text() == '{"old": true}'
    # no temporary file is left behind (the backup of the old content may be)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_an_interrupt_during_replace_is_reraised_and_cleans_up(tmp_path, monkeypatch):
    f = tmp_path / "c.json"
    f.write_text("old")

    def interrupt(*a):
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "replace", interrupt)
    with pytest.raises(KeyboardInterrupt):
        atomic.write_atomic(f, "new")
    assert f.read_text() == "old"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@settings(max_examples=40, deadline=None)
@given(contents=st.lists(st.text(max_size=30), min_size=1, max_size=6))
def test_sequence_of_writes(tmp_path_factory, contents):
    d = tmp_path_factory.mktemp("seq")
    f = d / "x.json"
    changes = 0
    previous = None
    for i, c in enumerate(contents):
        r = atomic.write_atomic(f, c, clock=lambda: 1_700_000_000 + i)
        assert r.changed == (c != previous)
        if r.changed and previous is not None:
            changes += 1
            assert r.backup.read_bytes().decode() == previous
        previous = c
        assert f.read_bytes().decode() == c
    assert len([p for p in d.iterdir() if ".bak-" in p.name]) == changes
