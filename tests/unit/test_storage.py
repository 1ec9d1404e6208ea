"""One way to open a path (airflow_provider_stripe.storage): local files and object storage alike."""

from __future__ import annotations

import multiprocessing
import os
import signal
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_stripe.compat import is_object_storage_path
from airflow_provider_stripe.errors import StripeInputError
from airflow_provider_stripe.storage import STALE_PART_AGE_S, atomic_open, open_text, resolve


@pytest.fixture(autouse=True)
def memory_fs(monkeypatch: pytest.MonkeyPatch) -> None:
    """fsspec's in-memory filesystem registered the way a provider registers s3:// or gs://."""
    from airflow.sdk.io import fs as airflow_fs
    from fsspec.implementations.memory import MemoryFileSystem

    memory = MemoryFileSystem()
    monkeypatch.setitem(airflow_fs._register_filesystems(), "memory", lambda conn_id: memory)


def test_resolve_local_url_and_object_storage(tmp_path: Path) -> None:
    assert resolve(str(tmp_path / "a.jsonl")) == tmp_path / "a.jsonl"
    assert resolve(f"file://{tmp_path}/b.jsonl") == tmp_path / "b.jsonl"  # file:// is local
    remote = resolve("memory://bucket/stripe/c.jsonl")
    assert is_object_storage_path(remote) and remote.protocol == "memory"
    for bad in ("", None, 42, ["x"]):
        with pytest.raises(StripeInputError, match="file path or an object storage URL"):
            resolve(bad, field="results_path")


@pytest.mark.parametrize("where", ["local", "memory"])
def test_atomic_open_replaces_only_when_complete(where: str, tmp_path: Path) -> None:
    target = resolve(str(tmp_path / "out" / "rows.jsonl") if where == "local" else "memory://atomic/out/rows.jsonl")
    with atomic_open(target, "w") as handle:
        handle.write("first\n")
    with pytest.raises(RuntimeError), atomic_open(target, "w") as handle:
        handle.write("half")
        raise RuntimeError("the export failed half-way")
    with open_text(target) as handle:
        assert handle.read() == "first\n"  # the failed write left the old file whole
    assert [p.name for p in target.parent.iterdir()] == ["rows.jsonl"]  # no .part left behind


def _write_forever(target: Path, ready: Any) -> None:
    """A writer in another process: half a file written, then stuck (until killed)."""
    with atomic_open(target) as handle:
        handle.write(b"x" * 1_000_000)
        handle.flush()
        ready.set()
        time.sleep(600)


def _start_writer(target: Path) -> Any:
    context = multiprocessing.get_context("fork")  # the real code, without a new interpreter's import cost
    ready = context.Event()
    process = context.Process(target=_write_forever, args=(target, ready), daemon=True)
    process.start()
    assert ready.wait(30), "the writer never started"
    return process


def _parts(folder: Path) -> set[Path]:
    return set(folder.glob(".*.part"))


def test_a_crashed_writes_part_file_is_removed_by_the_next_write(tmp_path: Path) -> None:
    """A writer killed mid-write (SIGKILL: no cleanup ran) left ``.<name>.*.part``; the next write
    of that target removes it, but not a live writer's part nor another target's."""
    target = tmp_path / "day.jsonl"
    crashed = _start_writer(target)
    (crashed_part,) = _parts(tmp_path)
    os.kill(crashed.pid, signal.SIGKILL)
    crashed.join(10)
    live = _start_writer(target)
    (live_part,) = _parts(tmp_path) - {crashed_part}
    other = tmp_path / ".day.jsonl.bak.abc123.part"  # a part of the target day.jsonl.bak
    other.write_bytes(b"other")
    try:
        stale = time.time() - STALE_PART_AGE_S - 1
        for part in (crashed_part, live_part, other):
            os.utime(part, (stale, stale))
        with atomic_open(target, "w") as handle:
            handle.write("complete\n")
        assert target.read_text() == "complete\n"
        assert _parts(tmp_path) == {live_part, other}  # the crashed part is gone; the live writer's is kept
    finally:
        live.kill()
        live.join(10)
    # A young part without a writer is not touched either (it may be one being created).
    young = tmp_path / ".day.jsonl.young1.part"
    young.write_bytes(b"")
    with atomic_open(target, "w") as handle:
        handle.write("again\n")
    assert young.exists() and not live_part.exists()  # the killed live writer's part was stale now


@pytest.mark.parametrize(
    ("umask", "before", "after"), [(0o022, 0o644, 0o644), (0o022, 0o664, 0o664), (0o077, 0o640, 0o640)]
)
def test_a_replaced_file_keeps_its_mode(tmp_path: Path, umask: int, before: int, after: int) -> None:
    """Replacing a 0644 file used to make it 0600 (the temporary file's mode): readers lost access."""
    target = tmp_path / "out.csv"
    target.write_text("old\n")
    target.chmod(before)
    old_umask = os.umask(umask)
    try:
        with atomic_open(target, "w") as handle:
            handle.write("new\n")
    finally:
        os.umask(old_umask)
    assert (target.read_text(), stat.S_IMODE(target.stat().st_mode)) == ("new\n", after)


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_a_new_file_gets_the_umask_default(tmp_path: Path, umask: int) -> None:
    target = tmp_path / "new" / "out.jsonl"
    old_umask = os.umask(umask)
    try:
        with atomic_open(target, "w") as handle:
            handle.write("{}\n")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
