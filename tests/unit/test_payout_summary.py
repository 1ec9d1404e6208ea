"""The approval summary of a payout batch (count, totals, largest items, digest) and the gate's version check."""

from __future__ import annotations

import sys

import pytest

from airflow_provider_stripe.errors import StripeBatchInputError, StripeBatchLimitError
from airflow_provider_stripe.payouts.limits import BatchLimits
from airflow_provider_stripe.payouts.sources import validate_batch
from airflow_provider_stripe.payouts.summary import summarize_batch

ITEMS = [
    {"reference": "a", "amount": 500, "currency": "eur"},
    {"reference": "b", "amount": 90_000, "currency": "eur", "description": "Quarterly bonus"},
    {"reference": "c", "amount": 500, "currency": "eur"},
    {"reference": "d", "amount": 700, "currency": "jpy"},
    {"reference": "e", "amount": 1200, "currency": "eur"},
]


def test_the_summary_gives_count_totals_and_the_largest_items_per_currency() -> None:
    summary = summarize_batch(ITEMS, largest=3)
    assert (summary["count"], summary["totals"]) == (5, {"eur": 92_200, "jpy": 700})
    assert summary["totals_text"] == "922.00 EUR, 700 JPY"
    assert [(r["reference"], r["amount_text"]) for r in summary["largest"]["eur"]] == [
        ("b", "900.00 EUR"),
        ("e", "12.00 EUR"),
        ("a", "5.00 EUR"),  # a tie with c: the earlier item
    ]
    assert summary["largest"]["eur"][0]["description"] == "Quarterly bonus"
    assert [r["reference"] for r in summary["largest"]["jpy"]] == ["d"]
    assert summary["explicit_references"] == 5 and summary["limits"] == {"max_items": None, "max_total": None}
    text = summary["text"]
    assert text.startswith("**5 payout(s), 922.00 EUR, 700 JPY in total.**")
    assert "| EUR | 922.00 EUR | 900.00 EUR `b`; 12.00 EUR `e`; 5.00 EUR `a` |" in text
    assert "| JPY | 700 JPY | 700 JPY `d` |" in text
    assert f"`{summary['digest'][:16]}`" in text


def test_the_digest_is_the_batchs_and_names_exactly_its_instructions() -> None:
    digest = summarize_batch(ITEMS)["digest"]
    with validate_batch(ITEMS) as batch:
        assert batch.digest == digest, "the batch operator sees the digest the approver was shown"
    assert summarize_batch([dict(i) for i in ITEMS])["digest"] == digest
    changed = [dict(i) for i in ITEMS]
    changed[1]["amount"] += 1
    assert summarize_batch(changed)["digest"] != digest
    assert summarize_batch(list(reversed(ITEMS)))["digest"] != digest


def test_invalid_or_over_the_limits_no_summary() -> None:
    with pytest.raises(StripeBatchInputError):
        summarize_batch([*ITEMS, {"reference": "x", "amount": 1.5, "currency": "eur"}])
    with pytest.raises(StripeBatchLimitError, match=r"700 JPY in total, and max_total has no cap for 'jpy'"):
        summarize_batch(ITEMS, limits=BatchLimits.from_arguments(10, {"eur": 100_000}))
    within = summarize_batch(ITEMS, limits=BatchLimits.from_arguments(5, {"eur": 92_200, "jpy": 700}))
    assert "Within the batch's limits (at most 5 items, at most 922.00 EUR, 700 JPY)." in within["text"]


def test_without_the_human_in_the_loop_operators_the_gate_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow_provider_stripe.compat import approval_operator

    assert approval_operator().__name__ == "ApprovalOperator"
    monkeypatch.setitem(sys.modules, "airflow.providers.standard.operators.hitl", None)  # as if absent
    with pytest.raises(ImportError) as caught:
        approval_operator()
    message = str(caught.value)
    assert "needs Airflow's human-in-the-loop operators" in message
    assert "Airflow 3.1+ and an apache-airflow-providers-standard that ships them" in message
    assert "apache-airflow-providers-standard 1." in message, "names the installed version"
    assert "pay without a human gate: StripePayoutBatchOperator with max_items / max_total" in message
