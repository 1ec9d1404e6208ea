"""The Stripe Dashboard link: test/live path, connected account, one object or a list."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from airflow_provider_stripe.links.dashboard import StripeDashboardLink, dashboard_url, link_for_result, object_url


def test_urls() -> None:
    assert dashboard_url("payouts", livemode=True) == "https://dashboard.stripe.com/payouts"
    assert dashboard_url("payouts", livemode=False) == "https://dashboard.stripe.com/test/payouts"
    assert (
        object_url("ch_123", livemode=False, account_id="acct_9")
        == "https://dashboard.stripe.com/acct_9/test/payments/ch_123"
    )
    assert object_url("re_1", livemode=True) == "https://dashboard.stripe.com/refunds/re_1"
    assert (
        object_url("zz_1", livemode=True) == "https://dashboard.stripe.com"
    )  # unknown: the Dashboard, never a wrong page


def test_results() -> None:
    charge = {"id": "ch_1", "amount": 500, "livemode": False}
    assert link_for_result(charge, livemode=False, account_id=None) == "https://dashboard.stripe.com/test/payments/ch_1"
    batch = {"summary": {}, "results": [{"payout_id": "po_1"}, {"payout_id": "po_2"}, {"error": {}}]}
    assert link_for_result(batch, livemode=False, account_id=None) == "https://dashboard.stripe.com/test/payouts"
    sensor = {"status": "paid", "count": 1, "payout_ids": ["po_7"]}
    assert link_for_result(sensor, livemode=True, account_id="acct_2") == (
        "https://dashboard.stripe.com/acct_2/payouts/po_7"
    )
    assert link_for_result({"dry_run": True, "params": {}}, livemode=False, account_id=None) == ""


def test_get_link_reads_the_task_result_and_the_connection() -> None:
    pulled: dict[str, Any] = {}

    def xcom_pull(**kwargs: Any) -> Any:
        pulled.update(kwargs)
        return {"id": "po_5", "livemode": None, "account_id": None}

    ti = SimpleNamespace(task_id="pay", map_index=3, xcom_pull=xcom_pull)
    operator = SimpleNamespace(hook=SimpleNamespace(config=SimpleNamespace(livemode=True), account_id="acct_c"))
    link = StripeDashboardLink().get_link(operator, ti_key=ti)
    assert link == "https://dashboard.stripe.com/acct_c/payouts/po_5"
    assert pulled == {"task_ids": "pay", "key": "return_value", "map_indexes": 3}
    assert StripeDashboardLink().xcom_key == "_link_StripeDashboardLink"


class _BrokenHook:
    """A hook whose connection is invalid: reading its config raises, as the failed task's did."""

    account_id = None

    @property
    def config(self) -> Any:
        raise RuntimeError("connection invalid")


def test_get_link_does_not_pull_before_a_result_exists_nor_touch_a_broken_connection() -> None:
    pulls: list[str] = []

    def xcom_pull(**kwargs: Any) -> Any:
        pulls.append(kwargs["task_ids"])
        return None

    operator = SimpleNamespace(hook=_BrokenHook())
    for state in ("deferred", "up_for_reschedule"):  # the try ends with no result yet: no pull at all
        ti = SimpleNamespace(task_id="wait", map_index=-1, state=SimpleNamespace(value=state), xcom_pull=xcom_pull)
        assert StripeDashboardLink().get_link(operator, ti_key=ti) == ""
    assert pulls == []
    failed = SimpleNamespace(task_id="charge", map_index=-1, state="failed", xcom_pull=xcom_pull)
    assert StripeDashboardLink().get_link(operator, ti_key=failed) == ""  # no result: no link, no traceback
    assert pulls == ["charge"]
