"""The README documents exactly the fields the connection form has (generated, not restated)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _readme_fields():
    spec = importlib.util.spec_from_file_location("readme_fields", REPO / "scripts" / "readme_fields.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_field_table_is_generated_from_the_form() -> None:
    module = _readme_fields()
    assert module.section() in (REPO / "README.md").read_text(), (
        "run: .venv/bin/python scripts/readme_fields.py --write"
    )


def test_readme_names_exactly_two_setup_commands() -> None:
    text = (REPO / "README.md").read_text()
    block = text.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    commands = [line for line in block.splitlines() if line.startswith("bash ")]
    assert commands == ["bash scripts/demo.sh", "bash scripts/test.sh"]


def test_readme_benchmark_figures_are_generated_from_the_results_files() -> None:
    from benchmarks import summary

    assert summary.section() in (REPO / "README.md").read_text(), "run: .venv/bin/python -m benchmarks.summary --write"
