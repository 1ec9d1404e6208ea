"""The charge and export example DAGs, run for real with ``dag.test()`` against localstripe.

* ``stripe_charge_capture_refund``: two mapped authorizations, captured, then partly
  refunded through XCom; checked in localstripe's own state (about 15 s).
* ``stripe_daily_export``: the day's charges and payouts land in JSON Lines files named
  after the data interval, one line per object created that day (about 10 s).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import stripe

from airflow_provider_stripe.testing.connection import LOCAL_TEST_KEY, connection_env
from tests import airflow_env
from tests.airflow.dag_helpers import example_dag, xcoms

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]


@pytest.fixture(scope="module")
def migrated() -> None:
    airflow_env.migrate()


@pytest.fixture
def stripe_default(migrated: None, localstripe: str, monkeypatch: pytest.MonkeyPatch) -> stripe.StripeClient:
    """``stripe_default`` points at a flushed localstripe; returns a client to inspect it."""
    for name, value in connection_env("stripe_default", base_url=localstripe).items():
        monkeypatch.setenv(name, value)
    return stripe.StripeClient(LOCAL_TEST_KEY, base_addresses={"api": localstripe})


def test_charge_capture_refund_dag(stripe_default: stripe.StripeClient) -> None:
    dag = example_dag("stripe_charge_capture_refund")
    dag_run = dag.test()
    assert str(dag_run.state) == "success"

    charges = sorted(stripe_default.v1.charges.list({"limit": 100}).data, key=lambda c: c.amount)
    assert [(c.amount, c.currency, c.metadata.to_dict()) for c in charges] == [
        (2000, "eur", {"order_id": "A-1001"}),
        (3500, "eur", {"order_id": "A-1002"}),
    ]
    for charge in charges:
        assert charge.captured is True
        assert charge.amount_refunded == 500 and charge.refunded is False
        (refund,) = charge.to_dict()["refunds"]["data"]
        assert (refund["amount"], refund["metadata"]) == (500, {"note": "goodwill partial refund"})

    authorized = xcoms(dag_run, "authorize")
    captured = xcoms(dag_run, "capture")
    refunds = xcoms(dag_run, "refund_part")
    assert sorted(a["id"] for a in authorized) == sorted(c.id for c in charges)
    assert all(a["captured"] is False for a in authorized) and all(c["captured"] is True for c in captured)
    assert [r["charge"] for r in refunds] == [c["id"] for c in captured]
    assert len({a["idempotency_key"] for a in authorized}) == 2  # one key per mapped instance
    assert LOCAL_TEST_KEY not in json.dumps([authorized, captured, refunds])


def test_daily_export_dag(stripe_default: stripe.StripeClient, tmp_path: Path) -> None:
    client = stripe_default
    charges = [
        client.v1.charges.create({"amount": a, "currency": "eur", "source": "pm_card_visa"}) for a in (900, 1900)
    ]
    payouts = [client.v1.payouts.create({"amount": a, "currency": "eur"}) for a in (700, 800)]
    # The run whose data interval is the UTC day the first object was created in.
    day = datetime.fromtimestamp(charges[0].created, timezone.utc).replace(hour=0, minute=0, second=0)
    start, end = int(day.timestamp()), int((day + timedelta(days=1)).timestamp())

    def expected(objects: list[Any]) -> list[str]:
        return sorted(o.id for o in objects if start <= o.created < end)  # all of them, unless midnight passed

    dag_run = example_dag("stripe_daily_export").test(
        logical_date=day + timedelta(days=1), run_conf={"export_dir": str(tmp_path)}
    )
    assert str(dag_run.state) == "success"

    for kind, objects in (("charges", charges), ("payouts", payouts)):
        path = tmp_path / kind / f"{day:%Y-%m-%d}.jsonl"
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        assert sorted(line["id"] for line in lines) == expected(objects)
        (result,) = xcoms(dag_run, f"export_{kind}")
        assert result["path"] == str(path)
        assert result["count"] == len(lines)
        assert (result["created_gte"], result["created_lt"]) == (start, end)
