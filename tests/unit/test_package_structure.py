"""The package's shape: one error hierarchy, and no import cycle between its modules."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import airflow_provider_stripe
from airflow_provider_stripe import errors
from airflow_provider_stripe.errors import StripeProviderError

PACKAGE = airflow_provider_stripe.__name__
ROOT = Path(airflow_provider_stripe.__file__).parent


def _module_names() -> list[str]:
    return [PACKAGE] + [m.name for m in pkgutil.walk_packages([str(ROOT)], prefix=PACKAGE + ".")]


def _path(module: str) -> Path:
    parts = module.split(".")[1:]
    package_init = ROOT.joinpath(*parts, "__init__.py")
    return package_init if package_init.exists() else ROOT.joinpath(*parts).with_suffix(".py")


def _public_exceptions() -> dict[str, type[BaseException]]:
    """Every exception class with a public name defined anywhere in the package.

    ``testing`` is left out: its servers model Stripe's own server-side errors (a bad list
    query answered with a 400), which the provider never raises to a DAG.
    """
    found: dict[str, type[BaseException]] = {}
    for module in _module_names():
        if module.startswith(f"{PACKAGE}.testing"):
            continue
        tree = ast.parse(_path(module).read_text())
        names = [node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
        if not any(not name.startswith("_") for name in names):
            continue
        loaded = importlib.import_module(module)
        for name in names:
            cls = getattr(loaded, name, None)
            if not name.startswith("_") and isinstance(cls, type) and issubclass(cls, BaseException):
                found[f"{module}.{name}"] = cls
    return found


def test_every_public_exception_is_defined_in_errors_under_one_root() -> None:
    found = _public_exceptions()
    assert len(found) >= 12, sorted(found)
    for where, cls in found.items():
        assert issubclass(cls, StripeProviderError), f"{where} does not derive from StripeProviderError"
        assert cls.__module__ == errors.__name__, f"{where} is defined outside errors.py"


@pytest.mark.parametrize(
    ("name", "stdlib_base"),
    [
        ("StripeConfigurationError", ValueError),
        ("LiveModeNotAllowedError", PermissionError),
        ("StripeRequestError", RuntimeError),
        ("StripePayoutError", RuntimeError),
        ("RateLimitWaitExceeded", TimeoutError),
        ("StripeInputError", ValueError),
        ("StripeBatchInputError", ValueError),
        ("SourceError", ValueError),
        ("PayoutIdsError", ValueError),
        ("WebhookSignatureError", ValueError),
        ("WebhookPayloadError", ValueError),
    ],
)
def test_exceptions_keep_their_stdlib_base(name: str, stdlib_base: type[BaseException]) -> None:
    """``except ValueError`` (and the like) in a DAG still catches them: one hierarchy, standard bases."""
    cls = getattr(errors, name)
    assert issubclass(cls, StripeProviderError) and issubclass(cls, stdlib_base)


def test_one_except_catches_a_request_error_and_it_still_pickles_where_it_did() -> None:
    import pickle

    from airflow_provider_stripe.errors import WebhookSignatureError, WebhookSignatureReason

    with pytest.raises(StripeProviderError):
        raise errors.StripeInputError("is negative: pass an amount >= 1", field="amount")
    error = pickle.loads(pickle.dumps(WebhookSignatureError(WebhookSignatureReason.NO_MATCH, "no match")))
    assert error.reason == WebhookSignatureReason.NO_MATCH and isinstance(error, StripeProviderError)


# -- import graph ------------------------------------------------------------------------------


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of ``tree`` except those under ``if TYPE_CHECKING:`` (never run)."""
    nodes: list[ast.AST] = []
    pending = [tree]
    while pending:
        node = pending.pop()
        nodes.append(node)
        for child in ast.iter_child_nodes(node):
            test = child.test if isinstance(child, ast.If) else None
            if test is not None and "TYPE_CHECKING" in ast.unparse(test):
                pending.extend(child.orelse)
                continue
            pending.append(child)
    return nodes


def _imports(module: str, modules: set[str]) -> set[str]:
    """The package modules ``module`` imports when it runs: at top level or inside functions.

    Imports for type checking only are left out: they never run, so they cannot loop.
    """
    is_package = _path(module).name == "__init__.py"
    targets: set[str] = set()
    for node in _runtime_nodes(ast.parse(_path(module).read_text())):
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            targets.add(base)
            targets |= {f"{base}.{alias.name}" for alias in node.names}
    return {t for t in targets if t in modules and t != module}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_no_import_cycle_between_the_package_modules() -> None:
    modules = set(_module_names())
    graph = {module: _imports(module, modules) for module in modules}
    assert graph["airflow_provider_stripe.payouts.instructions"], "the graph must see imports (sanity check)"
    assert _cycles(graph) == []
    # errors.py is the root every module may import: it imports nothing of the package but the
    # Airflow compat module (for AirflowFailException), which imports nothing of the package.
    assert graph[errors.__name__] <= {f"{PACKAGE}.compat"}
    assert graph[f"{PACKAGE}.compat"] == set()


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    tree = ast.parse("import a\nif TYPE_CHECKING:\n    import b\nelse:\n    import c\ndef f():\n    import d\n")
    imported = {alias.name for node in _runtime_nodes(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert imported == {"a", "c", "d"}


def test_provider_info_imports_neither_airflow_nor_the_error_hierarchy() -> None:
    """Airflow loads provider info while it initialises its configuration: importing Airflow
    (or errors.py, which imports it) from there is circular and breaks every Airflow process."""
    import subprocess
    import sys

    code = (
        "import sys, airflow_provider_stripe.get_provider_info as g\n"
        "g.get_provider_info()\n"
        "print(','.join(sorted(m for m in sys.modules if m == 'airflow' or m.startswith(('airflow.', "
        "'airflow_provider_stripe.errors', 'airflow_provider_stripe.compat', "
        "'airflow_provider_stripe.connection.config')))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT.parent)
    assert result.stdout.strip() == ""
