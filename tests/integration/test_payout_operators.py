"""StripeCreatePayoutOperator, StripeCancelPayoutOperator, dry runs and the live-mode guard,
against a real localstripe on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests

from airflow_provider_stripe.errors import LiveModeNotAllowedError, StripeInputError
from airflow_provider_stripe.operators.payouts import (
    StripeCancelPayoutOperator,
    StripeCreatePayoutOperator,
    StripePayoutBatchOperator,
)
from tests.integration.payout_helpers import eur_items, payout_context, payouts_by_reference
from tests.integration.stripe_task_context import LIVE_KEY, TEST_KEY, stripe_connection

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def conn(monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    def make(base_url: str, **extra: Any) -> str:
        return stripe_connection(monkeypatch, base_url, **extra)

    return make


def _create(conn_id: str, **kwargs: Any) -> StripeCreatePayoutOperator:
    kwargs.setdefault("amount", 12_50)
    kwargs.setdefault("currency", "eur")
    return StripeCreatePayoutOperator(task_id="pay_one", stripe_conn_id=conn_id, **kwargs)


def test_single_payout_is_created_once_across_tries(localstripe: str, conn: Callable[..., str]) -> None:
    conn_id = conn(localstripe)
    op = _create(
        conn_id, reference="settlement-7", description="Weekly", statement_descriptor="ACME", metadata={"p": 7}
    )
    first = op.execute(payout_context(task_id="pay_one"))
    assert first["outcome"] == "created" and first["status"] == "pending" and first["id"].startswith("po_")
    assert (first["amount"], first["currency"], first["reference"], first["livemode"]) == (
        1250,
        "eur",
        "settlement-7",
        False,
    )
    retry = _create(
        conn_id, reference="settlement-7", description="Weekly", statement_descriptor="ACME", metadata={"p": 7}
    )
    again = retry.execute(payout_context(task_id="pay_one", try_number=2))
    assert again["outcome"] == "existing" and again["id"] == first["id"]
    (payout,) = payouts_by_reference(localstripe, TEST_KEY)["settlement-7"]
    assert payout["metadata"]["p"] == "7" and payout["description"] == "Weekly"


def test_single_payout_validation_sends_nothing(localstripe: str, conn: Callable[..., str]) -> None:
    with pytest.raises(StripeInputError, match="field 'amount'"):
        _create(conn(localstripe), amount=12.5).execute(payout_context())
    assert payouts_by_reference(localstripe, TEST_KEY) == {}


def test_dry_runs_send_nothing(localstripe: str, conn: Callable[..., str]) -> None:
    conn_id = conn(localstripe)
    single = _create(conn_id, dry_run=True).execute(payout_context())
    assert single["dry_run"] is True and single["params"]["amount"] == 1250
    result = StripePayoutBatchOperator(
        task_id="pay_out", stripe_conn_id=conn_id, payouts=eur_items(3), dry_run=True
    ).execute(payout_context())
    assert result["summary"]["dry_run"] is True and result["summary"]["dry_run"] and result["summary"]["total"] == 3
    assert [r["outcome"] for r in result["results"]] == ["dry_run"] * 3
    assert payouts_by_reference(localstripe, TEST_KEY) == {}


def test_live_keys_are_refused_before_anything_is_sent(localstripe: str, conn: Callable[..., str]) -> None:
    conn_id = conn(localstripe, api_key=LIVE_KEY)
    with pytest.raises(LiveModeNotAllowedError, match="allow_live_mode"):
        _create(conn_id).execute(payout_context())
    with pytest.raises(LiveModeNotAllowedError):
        StripePayoutBatchOperator(task_id="pay_out", stripe_conn_id=conn_id, payouts=eur_items(2)).execute(
            payout_context()
        )
    assert payouts_by_reference(localstripe, TEST_KEY) == {}
    allowed = conn(localstripe, api_key=LIVE_KEY, allow_live_mode=True)
    assert _create(allowed).execute(payout_context())["outcome"] == "created"


def test_cancel_pending_payout_and_tolerate_an_earlier_cancel(localstripe: str, conn: Callable[..., str]) -> None:
    conn_id = conn(localstripe)
    payout_id = _create(conn_id).execute(payout_context())["id"]

    def cancel(try_number: int) -> dict[str, Any]:
        op = StripeCancelPayoutOperator(task_id="cancel", stripe_conn_id=conn_id, payout_id=payout_id)
        return op.execute(payout_context(task_id="cancel", try_number=try_number))

    assert cancel(1)["status"] == "canceled"
    assert cancel(2)["status"] == "canceled"  # a retry after a lost answer: already done


def test_cancel_refuses_a_paid_payout_naming_its_status(localstripe: str, conn: Callable[..., str]) -> None:
    conn_id = conn(localstripe)
    payout_id = _create(conn_id).execute(payout_context())["id"]
    requests.post(f"{localstripe}/v1/payouts/{payout_id}", data={"status": "paid"}, auth=(TEST_KEY, ""), timeout=5)
    op = StripeCancelPayoutOperator(task_id="cancel", stripe_conn_id=conn_id, payout_id=payout_id)
    with pytest.raises(StripeInputError, match="is 'paid'; Stripe can cancel only pending payouts"):
        op.execute(payout_context(task_id="cancel"))
    with pytest.raises(StripeInputError, match="po_"):
        StripeCancelPayoutOperator(task_id="c", stripe_conn_id=conn_id, payout_id="tr_123").execute(payout_context())


def test_callable_payouts_are_rendered_by_airflow(localstripe: str, conn: Callable[..., str]) -> None:
    def instructions(context: Any, jinja_env: Any) -> Any:
        return (item for item in eur_items(4, prefix=context["ti"].task_id))

    op = StripePayoutBatchOperator(task_id="pay_out", stripe_conn_id=conn(localstripe), payouts=instructions)
    context = payout_context()
    op.render_template_fields(context)
    assert op.execute(context)["summary"]["created"] == 4
    assert sorted(payouts_by_reference(localstripe, TEST_KEY)) == [f"pay_out-{n}" for n in range(4)]
