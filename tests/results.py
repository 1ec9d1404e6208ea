"""Results of test tiers per combination (Airflow x stripe x Python), as JSON for the compatibility table.

``scripts/test-matrix.sh`` runs each tier with ``STRIPE_TEST_RESULTS=<file>``; the root
``conftest.py`` then calls :func:`record` at the end of the pytest session, and the demo tier
is recorded from the command line::

    python -m tests.results record test-output/matrix/COMBO.json demo --exit-status 0 --seconds 41

``scripts/compat_table.py`` reads the files to write or check the README's table.
Needs no Airflow import: versions come from the installed distributions' metadata.
"""

from __future__ import annotations

import argparse
import json
import platform
from importlib.metadata import version
from pathlib import Path
from typing import Any


def installed_versions() -> dict[str, str]:
    """The Python, Airflow and stripe versions of this interpreter's environment."""
    return {"python": platform.python_version(), "airflow": version("apache-airflow"), "stripe": version("stripe")}


def record(path: str | Path, tier: str, counts: dict[str, Any], *, ok: bool, seconds: float) -> None:
    """Add (or replace) one tier's outcome in the combination's results file. The ``plain`` tier
    ran in its own, unpinned venv: its versions are kept with it, not as the combination's."""
    target = Path(path)
    data: dict[str, Any] = json.loads(target.read_text()) if target.exists() else {}
    if tier == "plain":
        counts = {**counts, **installed_versions()}
    else:
        data.update(installed_versions())
    data.setdefault("tiers", {})[tier] = {**counts, "ok": ok, "seconds": round(seconds, 1)}
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.results", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="record a non-pytest tier (demo, plain)")
    rec.add_argument("path")
    rec.add_argument("tier")
    rec.add_argument("--exit-status", type=int, required=True)
    rec.add_argument("--seconds", type=float, required=True)
    args = parser.parse_args(argv)
    record(args.path, args.tier, {}, ok=args.exit_status == 0, seconds=args.seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
