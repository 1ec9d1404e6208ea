"""The version matrix is stated once: constraints/ defines the combinations, the README's table
follows them, and the compat module reads the installed Airflow's version correctly."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from airflow_provider_stripe import compat

REPO = Path(__file__).resolve().parents[2]


def _compat_table():
    spec = importlib.util.spec_from_file_location("compat_table", REPO / "scripts" / "compat_table.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rows(table: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines()[2:]]


def test_readme_table_has_one_row_per_combination_with_its_pinned_versions() -> None:
    module = _compat_table()
    rows = _rows(module.readme_table())
    combos = module.combos()
    assert {"airflow-3.1-stripe14-py3.10", "airflow-3.2-stripe15-py3.11", "airflow-3.3-stripe16-py3.11"} <= set(combos)
    expected = [[module.pinned(c, "apache-airflow"), module.pinned(c, "stripe"), c.rsplit("-py", 1)[1]] for c in combos]
    assert [row[:3] for row in rows] == expected, "run .ci/run, then: python3 scripts/compat_table.py --write"


def test_every_combination_pins_the_airflow_and_stripe_it_names() -> None:
    module = _compat_table()
    for combo in module.combos():
        airflow_minor, stripe_major = combo.split("-")[1], combo.split("-")[2].removeprefix("stripe")
        assert module.pinned(combo, "apache-airflow").startswith(airflow_minor + "."), combo
        assert module.pinned(combo, "stripe").split(".")[0] == stripe_major, combo


def test_table_cells_say_what_ran(tmp_path: Path) -> None:
    module = _compat_table()
    combo = "airflow-3.1-stripe14-py3.10"
    tiers = {
        "unit": {"ok": True, "version_skips": 0},
        "integration": {"ok": True, "version_skips": 3},
        "airflow": {"ok": False, "version_skips": 0},
    }
    (tmp_path / f"{combo}.json").write_text(json.dumps({"tiers": tiers}))
    (row,) = [r for r in _rows(module.table(tmp_path)) if r[2] == "3.10"]
    assert row[3:8] == ["pass", "pass", "FAIL", "not run", "not run"]  # skip counts are in the run summary


def test_the_plain_install_cell_names_the_stripe_it_resolved(tmp_path: Path) -> None:
    module = _compat_table()
    combo = "airflow-3.1-stripe14-py3.10"
    tiers = {"plain": {"ok": True, "stripe": "16.1.0", "airflow": "3.1.8"}, "demo": {"ok": True}}
    (tmp_path / f"{combo}.json").write_text(json.dumps({"tiers": tiers}))
    (row,) = [r for r in _rows(module.table(tmp_path)) if r[2] == "3.10"]
    assert row[6:8] == ["pass", "pass (stripe 16.1.0)"]
    assert module.plain_requirements(combo) == ["apache-airflow==3.1.8", "cryptography<51"]


def test_the_table_says_what_a_plain_install_of_airflow_3_1_also_needs() -> None:
    """A plain install of Airflow 3.1.8 resolves cryptography 51, which breaks Airflow's Fernet."""
    module = _compat_table()
    header, _, *rows = module.table().splitlines()
    assert header.endswith("| a plain install also needs |")
    (row,) = [_rows(f"h\ns\n{r}")[0] for r in rows if r.startswith("| 3.1.")]
    assert row[-1] == "`cryptography<51`"


@pytest.mark.parametrize(("version", "release"), [("3.1.8", (3, 1)), ("3.3.0rc1", (3, 3)), ("3.10.2.dev0", (3, 10))])
def test_airflow_release_is_read_from_the_version_string(version: str, release: tuple[int, int]) -> None:
    assert compat._release(version) == release


def test_object_storage_paths_are_told_from_local_paths() -> None:
    """On Airflow 3.1 an ObjectStoragePath is also a pathlib.Path: isinstance(Path) cannot tell."""
    from airflow.sdk import ObjectStoragePath

    assert compat.is_object_storage_path(ObjectStoragePath("memory://bucket/file.jsonl"))
    assert not compat.is_object_storage_path(Path("/tmp/file.jsonl"))
    assert not compat.is_object_storage_path("memory://bucket/file.jsonl")


async def test_run_blocking_sends_a_threads_airflow_messages_through_the_calling_event_loop() -> None:
    """Airflow's SDK sends supervisor messages with ``async_to_sync``: from ``run_blocking``'s thread
    they must run on the trigger runner's own loop (under its lock), not on a loop of their own as
    from ``asyncio.to_thread`` (Airflow 3.1's triggerer dies of that)."""
    import asyncio
    import threading

    from asgiref.sync import async_to_sync

    loops: list[asyncio.AbstractEventLoop] = []

    async def send_to_supervisor() -> None:
        loops.append(asyncio.get_running_loop())

    def blocking(value: int) -> tuple[int, int]:
        async_to_sync(send_to_supervisor)()
        return value, threading.get_ident()

    value, thread = await compat.run_blocking(blocking, 7)
    assert value == 7 and thread != threading.get_ident()
    assert loops == [asyncio.get_running_loop()]
