"""One way to open a path (airflow_provider_stripe.storage): local files and object storage alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_stripe.compat import is_object_storage_path
from airflow_provider_stripe.errors import StripeInputError
from airflow_provider_stripe.storage import atomic_open, open_text, resolve


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
