"""The ``stripe_export_accounts`` example: one mapped export per connected account, in a real ``dag.test()`` run.

Each mapped task sends its account as ``Stripe-Account`` (seen at the server) and writes its own
file (the path is templated on ``{{ task.account_id }}``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import stripe

from airflow_provider_stripe.testing.connection import LOCAL_TEST_KEY, connection_env
from tests import airflow_env
from tests.airflow.dag_helpers import example_dag, task_states, xcoms
from tests.servers.stripe_reporting import LedgerFront, run_ledger_front

pytestmark = pytest.mark.timeout(180)
ACCOUNTS = ["acct_1WarehouseA", "acct_1WarehouseB", "acct_1WarehouseC"]


@pytest.fixture(scope="module")
def migrated() -> None:
    airflow_env.migrate()


@pytest.fixture
def front(migrated: None, localstripe_upstream: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[LedgerFront]:
    with run_ledger_front(localstripe_upstream) as server:
        for name, value in connection_env("stripe_default", base_url=server.url).items():
            monkeypatch.setenv(name, value)
        yield server


def test_one_mapped_export_per_account(
    front: LedgerFront, localstripe: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    seen: list[Any] = []
    forward = front._forward

    def recording(method: str, target: str, headers: Any, body: bytes) -> Any:
        seen.append(headers.get("Stripe-Account"))
        return forward(method, target, headers, body)

    monkeypatch.setattr(front, "_forward", recording)
    client = stripe.StripeClient(LOCAL_TEST_KEY, base_addresses={"api": localstripe})
    start = int(time.time())
    client.v1.customers.create({"email": "mapped@example.com"})
    dag = example_dag("stripe_export_accounts")
    now = datetime.now(timezone.utc)
    conf = {
        "accounts": ACCOUNTS,
        "warehouse": str(tmp_path / "out"),
        "since": datetime.fromtimestamp(start, timezone.utc).isoformat(),
        "until": (now + timedelta(seconds=2)).isoformat(),
    }
    dag_run = dag.test(logical_date=now, run_conf=conf)
    assert str(dag_run.state) == "success", task_states(dag_run)
    results = xcoms(dag_run, "export_customers")
    assert [r["account_id"] for r in results] == ACCOUNTS
    for account, result in zip(ACCOUNTS, results, strict=True):
        day = dag_run.logical_date.strftime("%Y-%m-%d")
        assert result["path"] == str(tmp_path / "out" / day / account / "customers.parquet")
        # localstripe ignores Stripe-Account: every account "has" the same customer.
        assert pq.read_table(result["path"]).column("email").to_pylist() == ["mapped@example.com"]
    assert sorted(a for a in seen if a) == sorted(ACCOUNTS)  # one list request per account, each with its header


def test_run_conf_accounts_cannot_escape_the_warehouse(front: LedgerFront, tmp_path: Path) -> None:
    """``accounts=["../../x"]`` used to write ``<warehouse>/<day>/../../x/customers.parquet``."""
    from airflow.sdk.definitions.param import ParamValidationError

    dag = example_dag("stripe_export_accounts")
    conf = {"accounts": ["acct_1WarehouseA", "../../escaped"], "warehouse": str(tmp_path / "out" / "wh")}
    with pytest.raises(ParamValidationError, match="accounts"):
        dag.test(logical_date=datetime.now(timezone.utc), run_conf=conf)
    assert list(tmp_path.iterdir()) == []
