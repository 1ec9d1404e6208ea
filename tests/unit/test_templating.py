"""Template rendering of the operators: literal strings skip Jinja, everything else renders as in Airflow."""

from __future__ import annotations

import jinja2
import pytest
from airflow.sdk import DAG

from airflow_provider_stripe.operators.payouts import StripePayoutBatchOperator


@pytest.fixture
def compiled(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The strings Jinja compiled."""
    seen: list[str] = []
    original = jinja2.Environment.from_string

    def from_string(self: jinja2.Environment, source: str, *args: object, **kwargs: object) -> jinja2.Template:
        seen.append(source)
        return original(self, source, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(jinja2.Environment, "from_string", from_string)
    return seen


def _batch(payouts: object, **dag_kwargs: object) -> StripePayoutBatchOperator:
    with DAG("templating", schedule=None, params={"who": "acme"}, **dag_kwargs):  # type: ignore[arg-type]
        return StripePayoutBatchOperator(task_id="batch", payouts=payouts)


def test_literal_items_are_not_compiled_and_templated_ones_render(compiled: list[str]) -> None:
    items = [{"reference": f"inv-{i}", "amount": 100, "currency": "eur"} for i in range(2000)]
    items[7]["description"] = "for {{ params.who }}"
    items[8]["description"] = "two\r\nlines\n"
    items[9]["description"] = "{# a comment #}kept"
    op = _batch(items)
    op.render_template_fields({"params": {"who": "acme"}})

    assert compiled == ["for {{ params.who }}", "two\r\nlines\n", "{# a comment #}kept"]
    assert op.payouts[7]["description"] == "for acme"
    assert op.payouts[8]["description"] == "two\nlines"  # Jinja's newline handling, kept
    assert op.payouts[9]["description"] == "kept"
    assert op.payouts[1999] == {"reference": "inv-1999", "amount": 100, "currency": "eur"}


def test_a_native_environment_still_renders_every_string(compiled: list[str]) -> None:
    op = _batch([{"reference": "inv-1", "amount": "1250", "currency": "eur"}], render_template_as_native_obj=True)
    op.render_template_fields({"params": {}})

    assert op.payouts[0]["amount"] == 1250  # native rendering turns "1250" into an int, as before
    assert "1250" in compiled


def test_a_template_file_path_is_still_loaded() -> None:
    op = _batch("items.json")
    op.template_ext = (".json",)
    with pytest.raises(jinja2.TemplateNotFound, match=r"items\.json"):
        op.render_template_fields({"params": {}})
