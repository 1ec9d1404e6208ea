"""The README's own facts: exactly two set-up commands, and benchmark figures generated from the results files."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_readme_names_exactly_two_setup_commands() -> None:
    text = (REPO / "README.md").read_text()
    block = text.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    commands = [line for line in block.splitlines() if line.startswith("bash ")]
    assert commands == ["bash scripts/demo.sh", "bash scripts/test.sh"]


def test_readme_benchmark_figures_are_generated_from_the_results_files() -> None:
    from benchmarks import summary

    assert summary.section() in (REPO / "README.md").read_text(), "run: .venv/bin/python -m benchmarks.summary --write"
