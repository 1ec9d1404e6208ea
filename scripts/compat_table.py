"""The README's compatibility table (Airflow x stripe x Python -> what works), from what CI ran.

Rows are the combinations in ``constraints/`` (one ``.in``/``.txt`` pair each, see
``scripts/pin.sh``); cells are the outcome of each tier as ``scripts/test-matrix.sh`` recorded it
in ``test-output/matrix/COMBO.json``: ``pass``, ``FAIL`` or ``not run`` (tiers CI does not run
on that combination). The ``plain`` tier is the demo in a venv installed the way the README tells
users without Airflow's constraints file (``plain_requirements``: that Airflow, the provider and
the last column's pins, resolved afresh, no lock file); its cell names the stripe it resolved.

    python3 scripts/compat_table.py            # print the table from the last matrix run
    python3 scripts/compat_table.py --write    # replace it in README.md
    python3 scripts/compat_table.py --check    # exit 1 if README.md disagrees with the last run
    python3 scripts/compat_table.py --plain-requirements COMBO   # what a plain install asks for

``.ci/run`` runs ``--check`` after the matrix, so the README cannot claim what CI did not show;
``tests/unit/test_compat_table.py`` checks that the table's rows and versions match ``constraints/``.
Standard library only (runs under any Python).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
CONSTRAINTS = REPO / "constraints"
RESULTS = REPO / "test-output" / "matrix"
START, END = "<!-- compatibility:start -->", "<!-- compatibility:end -->"
TIERS = (
    ("unit", "unit"),
    ("integration", "integration"),
    ("airflow", "DAG-level"),
    ("demo", "demo"),
    ("plain", "demo, plain install"),
)
_COMBO = re.compile(r"^airflow-(?P<airflow>\d+\.\d+)-stripe(?P<stripe>\d+)-py(?P<python>3\.\d+)$")


def _version_key(combo: str) -> tuple[tuple[int, ...], ...]:
    """``((airflow), (stripe), (python))`` as numbers, for ordering combinations."""
    match = _COMBO.match(combo)
    assert match is not None, combo
    return tuple(tuple(int(x) for x in match[part].split(".")) for part in ("airflow", "stripe", "python"))


def combos() -> list[str]:
    """The combinations in constraints/, newest Airflow first (then newest stripe, newest Python)."""
    names = [p.stem for p in CONSTRAINTS.glob("*.in") if _COMBO.match(p.stem)]
    return sorted(names, key=_version_key, reverse=True)


def pinned(combo: str, package: str) -> str:
    """The version ``constraints/COMBO.txt`` pins for a package."""
    for line in (CONSTRAINTS / f"{combo}.txt").read_text().splitlines():
        if line.startswith(f"{package}=="):
            return line.split("==", 1)[1].split()[0]
    raise SystemExit(f"constraints/{combo}.txt pins no {package}: run scripts/pin.sh {combo}")


def extra_pins(combo: str) -> list[str]:
    """Requirements the combination adds beyond Airflow and stripe: what a plain ``pip install`` of
    that Airflow and the provider resolves otherwise and breaks (each is explained in the ``.in``)."""
    lines = (CONSTRAINTS / f"{combo}.in").read_text().splitlines()
    reqs = [line.split("#")[0].strip() for line in lines]
    return [r for r in reqs if r and not r.startswith(("apache-airflow", "stripe"))]


def plain_requirements(combo: str) -> list[str]:
    """What a user installs without Airflow's constraints file (README, Compatibility): that Airflow
    release and the extra pins; the provider itself is added by the installer (scripts/bootstrap.sh)."""
    wants = (CONSTRAINTS / f"{combo}.in").read_text().splitlines()
    airflow = [line.strip() for line in wants if line.startswith("apache-airflow==")]
    return airflow + extra_pins(combo)


def _cell(results: dict, tier: str) -> str:
    outcome = results.get("tiers", {}).get(tier)
    if outcome is None:
        return "not run"
    if not outcome["ok"]:
        return "FAIL"
    if "stripe" in outcome:  # a plain install: say which SDK it resolved
        return f"pass (stripe {outcome['stripe']})"
    # How many tests a version marker skipped is in CI's run summary, not here: the README
    # states what works, which does not change each time a marked test is added.
    return "pass"


def table(results_dir: Path = RESULTS) -> str:
    rows = [
        "| Airflow | stripe | Python | " + " | ".join(label for _, label in TIERS) + " | a plain install also needs |",
        "|---|---|---|" + "---|" * len(TIERS) + "---|",
    ]
    for combo in combos():
        path = results_dir / f"{combo}.json"
        results = json.loads(path.read_text()) if path.exists() else {}
        python = _COMBO.match(combo)["python"]  # type: ignore[index]
        pins = ", ".join(f"`{p}`" for p in extra_pins(combo)) or "none"
        cells = [_cell(results, tier) for tier, _ in TIERS]
        versions = f"{pinned(combo, 'apache-airflow')} | {pinned(combo, 'stripe')} | {python}"
        rows.append(f"| {versions} | {' | '.join(cells)} | {pins} |")
    return "\n".join(rows)


def _block(text: str) -> re.Match[str]:
    match = re.search(re.escape(START) + r"\n(.*?)\n?" + re.escape(END), text, re.S)
    if match is None:
        raise SystemExit(f"README.md has no {START} ... {END} block")
    return match


def readme_table(text: str | None = None) -> str:
    """The table between the README's markers."""
    return _block(README.read_text() if text is None else text).group(1)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--plain-requirements"] and len(argv) == 2:
        print("\n".join(plain_requirements(argv[1])))
        return 0
    current = table()
    if "--write" in argv:
        text = README.read_text()
        block = _block(text)
        README.write_text(f"{text[: block.start()]}{START}\n{current}\n{END}{text[block.end() :]}")
        return 0
    if "--check" in argv:
        missing = [c for c in combos() if not (RESULTS / f"{c}.json").exists()]
        if missing:
            print(f"no matrix results for {', '.join(missing)}: run .ci/run (scripts/test-matrix.sh)", file=sys.stderr)
            return 1
        if readme_table() != current:
            print("README.md's compatibility table differs from what the matrix ran:", file=sys.stderr)
            print(current, file=sys.stderr)
            print("run: python3 scripts/compat_table.py --write", file=sys.stderr)
            return 1
        return 0
    print(current)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
