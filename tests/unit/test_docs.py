"""The docs pages stay true: generated tables match their source, every Python snippet runs,
every JSON snippet parses, every documented connection extra is a real field, every relative
link resolves, and the README stays a short front page whose quickstart DAG Airflow parses."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
PAGES = sorted([README, REPO / "CHANGELOG.md", *(REPO / "docs").glob("*.md")])
README_MAX_BYTES = 20_000
"""The README is the front page (what it is, install, the two commands, a first DAG, links);
the manual is in docs/."""

_FENCE = re.compile(r"^```(?P<lang>[a-z]*)\n(?P<body>.*?)^```", re.S | re.M)
_LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")
_DOTTED = re.compile(r"`(airflow_provider_stripe(?:\.\w+)*)`")
_CONN_ENV = re.compile(r"AIRFLOW_CONN_[A-Z_]+='(?P<json>.*?)'", re.S)


def _blocks(lang: str) -> list[tuple[str, str]]:
    """``(page:index, body)`` of every fenced block of that language, over all pages, in order."""
    found = []
    for page in PAGES:
        for index, match in enumerate(m for m in _FENCE.finditer(page.read_text()) if m["lang"] == lang):
            found.append((f"{page.relative_to(REPO)}:{index}", match["body"]))
    return found


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = _FENCE.sub("", page.read_text())
    return {_slug(line.lstrip("#")) for line in text.splitlines() if line.startswith("#")}


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_connection_field_table_is_generated_from_the_form() -> None:
    assert _script("connection_fields").section() in (REPO / "docs" / "connection.md").read_text(), (
        "run: .venv/bin/python scripts/connection_fields.py --write"
    )


@pytest.mark.parametrize(("where", "source"), [pytest.param(*b, id=b[0]) for b in _blocks("python")])
def test_python_snippet_runs(where: str, source: str) -> None:
    """Each snippet compiles, imports only names that exist and builds what it shows."""
    exec(compile(source, where, "exec"), {"__name__": f"snippet_{where}"})


def test_the_docs_have_python_snippets() -> None:
    """The parametrized test above runs something: the README's quickstart and the batch example."""
    pages = {where.split(":")[0] for where, _ in _blocks("python")}
    assert {"README.md", "docs/payout-safety.md"} <= pages


@pytest.mark.parametrize(("where", "source"), [pytest.param(*b, id=b[0]) for b in _blocks("json")])
def test_json_snippet_parses(where: str, source: str) -> None:
    json.loads(source)


def test_documented_connections_use_only_real_fields() -> None:
    """Every ``AIRFLOW_CONN_...='{...}'`` shown is JSON of a ``stripe`` connection whose extra keys the form has."""
    from airflow_provider_stripe.connection.form import CONNECTION_FIELDS
    from airflow_provider_stripe.constants import CONN_TYPE

    fields = {f.name for f in CONNECTION_FIELDS}
    shown = [(page, m["json"]) for page in PAGES for m in _CONN_ENV.finditer(page.read_text())]
    assert len(shown) >= 2, "README's quickstart and docs/connection.md each show one"
    for page, text in shown:
        conn = json.loads(text)
        assert conn["conn_type"] == CONN_TYPE, page
        assert set(conn["extra"]) <= fields, f"{page.name}: {set(conn['extra']) - fields} are no connection fields"


def _resolves(dotted: str) -> bool:
    """Whether ``package.module[.attribute...]`` names a module or something defined in one."""
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        try:
            target: object = importlib.import_module(".".join(parts[:n]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[n:]:
            if not hasattr(target, attribute):
                return False
            target = getattr(target, attribute)
        return True
    return False


def test_named_modules_and_objects_exist() -> None:
    """Every ``airflow_provider_stripe...`` path a page names imports (the docs follow the package's layout)."""
    named = {(page.relative_to(REPO), m[1]) for page in PAGES for m in _DOTTED.finditer(page.read_text())}
    assert len(named) > 20, "docs/architecture.md alone names more"
    missing = sorted(f"{page}: {dotted}" for page, dotted in named if not _resolves(dotted))
    assert not missing, missing


def test_relative_links_resolve() -> None:
    broken = []
    for page in PAGES:
        for match in _LINK.finditer(_FENCE.sub("", page.read_text())):
            target = match["target"]
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists() or (anchor and anchor not in _anchors(file)):
                broken.append(f"{page.relative_to(REPO)}: {target}")
    assert not broken, broken


def test_readme_is_a_short_front_page() -> None:
    size = len(README.read_bytes())
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes: move detail to a docs/ page"


def test_changelog_names_the_packaged_version() -> None:
    version = importlib.metadata.version("airflow-provider-stripe")
    first = next(line for line in (REPO / "CHANGELOG.md").read_text().splitlines() if line.startswith("## "))
    assert first.split()[1] == version, f"CHANGELOG.md's newest entry is {first!r}; the package is {version}"


def test_readme_quickstart_dag_parses_and_is_the_one_it_runs(tmp_path: Path) -> None:
    """Airflow's DagBag loads the quickstart DAG without import errors, under the id the run block tests."""
    from airflow_provider_stripe.compat import dagbag_module

    section = README.read_text().split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    python = [m["body"] for m in _FENCE.finditer(section) if m["lang"] == "python"]
    (dag_id,) = re.findall(r"^airflow dags test (\S+)", section, re.M)
    assert len(python) == 1, "the quickstart shows one DAG"
    (tmp_path / f"{dag_id}.py").write_text(python[0])
    bag = dagbag_module().DagBag(dag_folder=str(tmp_path))
    assert not bag.import_errors, bag.import_errors
    assert list(bag.dags) == [dag_id], f"the quickstart DAG is not {dag_id!r}, the id its run block tests"
    assert sorted(bag.dags[dag_id].task_ids) == ["pay", "wait"]


def test_examples_page_lists_every_example_dag() -> None:
    """docs/examples.md's table names each file of dags_examples/, and only those."""
    listed = re.findall(r"^\| `(dags_examples/[^`]+\.py)` \|", (REPO / "docs" / "examples.md").read_text(), re.M)
    present = sorted(str(p.relative_to(REPO)) for p in (REPO / "dags_examples").glob("*.py"))
    assert sorted(listed) == present
