"""StripePayoutBatchOperator's ``max_items`` / ``max_total`` against a real localstripe (behind the front).

A batch above its limits is refused after validation and before any request -- the front's
request log stays empty, not even a listing -- with a no-retry error giving the count and
the totals; a batch at its limits is paid. The DAG-level test is in
``tests/airflow/test_payout_batch_limits_dag.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_provider_stripe.errors import StripeBatchLimitError, StripeInputError
from airflow_provider_stripe.operators.payouts import StripePayoutBatchOperator
from tests.integration.payout_helpers import eur_items, payout_context, payouts_by_reference, write_jsonl
from tests.integration.stripe_task_context import TEST_KEY, stripe_connection
from tests.servers.localstripe_server import clear_request_log, request_log

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def conn_id(localstripe: str, monkeypatch: pytest.MonkeyPatch) -> str:
    clear_request_log(localstripe)
    return stripe_connection(monkeypatch, localstripe)


def batch(conn_id: str, payouts: Any, **kwargs: Any) -> StripePayoutBatchOperator:
    return StripePayoutBatchOperator(task_id="pay_out", stripe_conn_id=conn_id, payouts=payouts, **kwargs)


def test_above_max_items_nothing_is_requested(localstripe: str, conn_id: str, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "payouts.jsonl", eur_items(5))  # 1000..1004 cents
    with pytest.raises(StripeBatchLimitError) as caught:
        batch(conn_id, path, max_items=4).execute(payout_context())
    message = str(caught.value)
    assert "5 item(s), above max_items=4" in message and "The batch: 5 item(s), 50.10 EUR in total." in message
    assert request_log(localstripe) == [], "refused before any request, listings included"
    assert payouts_by_reference(localstripe, TEST_KEY) == {}


@pytest.mark.parametrize("dry_run", [False, True])
def test_above_max_total_nothing_is_requested_in_a_dry_run_either(
    localstripe: str, conn_id: str, dry_run: bool
) -> None:
    items = eur_items(3)  # 30.03 EUR
    with pytest.raises(StripeBatchLimitError, match=r"30\.03 EUR in total, above max_total 30\.02 EUR"):
        batch(conn_id, items, max_total={"EUR": 3002}, dry_run=dry_run).execute(payout_context())
    assert request_log(localstripe) == []


def test_a_currency_without_a_cap_is_refused(localstripe: str, conn_id: str) -> None:
    items = [*eur_items(2), {"reference": "usd-1", "amount": 700, "currency": "usd"}]
    with pytest.raises(StripeBatchLimitError, match=r"7\.00 USD in total, and max_total has no cap for 'usd'"):
        batch(conn_id, items, max_total={"eur": 10**6}).execute(payout_context())
    assert request_log(localstripe) == []


def test_a_batch_at_its_limits_is_paid(localstripe: str, conn_id: str) -> None:
    items = eur_items(3)
    total = sum(i["amount"] for i in items)
    result = batch(conn_id, items, max_items=3, max_total={"eur": total}).execute(payout_context())
    assert result["summary"]["created"] == 3
    assert sorted(payouts_by_reference(localstripe, TEST_KEY)) == sorted(i["reference"] for i in items)


def test_bad_limits_fail_before_the_batch_is_read(conn_id: str) -> None:
    def never_read(**_: Any) -> list[dict[str, Any]]:
        raise AssertionError("the source was read although the limits are invalid")

    with pytest.raises(StripeInputError, match="field 'max_total'"):
        batch(conn_id, never_read, max_total={"eur": 12.5}).execute(payout_context())


# -- approved_digest: only the approved instructions are paid --------------------------------


def test_only_the_approved_instructions_are_paid(localstripe: str, conn_id: str, tmp_path: Path) -> None:
    from airflow_provider_stripe.errors import StripeBatchChangedError
    from airflow_provider_stripe.payouts.summary import summarize_batch

    items = eur_items(3)
    path = write_jsonl(tmp_path / "payouts.jsonl", items)
    approved = summarize_batch(path)["digest"]
    items[2]["amount"] = 250_000  # the file changes after the approval
    write_jsonl(path, items)
    with pytest.raises(StripeBatchChangedError, match=r"its instructions \(3 item\(s\), 2520.01 EUR; digest "):
        batch(conn_id, path, approved_digest=approved).execute(payout_context())
    assert request_log(localstripe) == [], "refused before any request"

    with pytest.raises(StripeInputError, match="field 'approved_digest'"):
        batch(conn_id, path, approved_digest="None").execute(payout_context())  # e.g. a missing XCom, rendered

    result = batch(conn_id, path, approved_digest=summarize_batch(path)["digest"]).execute(payout_context())
    assert result["summary"]["created"] == 3
