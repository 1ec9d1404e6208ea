"""The "Stripe Dashboard" extra link of the money operators and the payout sensor, built from the
task's result: one object's page, or the payouts list; live or test, as the connected account."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from airflow.sdk import BaseOperatorLink

DASHBOARD_URL = "https://dashboard.stripe.com"
DASHBOARD_PATHS = {
    "ch_": "payments",
    "py_": "payments",
    "pi_": "payments",
    "re_": "refunds",
    "po_": "payouts",
    "dp_": "disputes",
    "du_": "disputes",
    "cus_": "customers",
    "in_": "invoices",
    "tr_": "connect/transfers",
    "fee_": "connect/application_fees",
    "evt_": "events",
}
"""Dashboard page of an object, by its id prefix."""


def dashboard_url(path: str = "", *, livemode: bool, account_id: str | None = None) -> str:
    """A Dashboard URL: ``/acct_...`` when acting as a connected account, ``/test`` in test mode."""
    parts = [DASHBOARD_URL]
    if account_id:
        parts.append(account_id)
    if not livemode:
        parts.append("test")
    if path:
        parts.append(path.strip("/"))
    return "/".join(parts)


def object_url(object_id: str, *, livemode: bool, account_id: str | None = None) -> str:
    """The Dashboard page of one object (its list page when the prefix is unknown: never a wrong page)."""
    for prefix, path in DASHBOARD_PATHS.items():
        if object_id.startswith(prefix):
            return dashboard_url(f"{path}/{object_id}", livemode=livemode, account_id=account_id)
    return dashboard_url(livemode=livemode, account_id=account_id)


def _ids(result: Any) -> list[str]:
    """The Stripe ids a task result names: ``id``, ``payout_id``, ``payout_ids``, per-item ``results``."""
    if isinstance(result, str):
        return [result]
    if not isinstance(result, Mapping):
        return []
    found = [result[key] for key in ("id", "payout_id") if isinstance(result.get(key), str)]
    for key in ("payout_ids", "results"):
        if isinstance(result.get(key), Iterable) and not isinstance(result.get(key), str):
            found += (found_id for item in result[key] for found_id in _ids(item))
    return list(dict.fromkeys(found))


def link_for_result(result: Any, *, livemode: bool, account_id: str | None) -> str:
    """The Dashboard link for a task result; ``""`` when it names nothing (a dry run, a failure)."""
    ids = _ids(result)
    if not ids:
        return ""
    if len(ids) == 1:
        return object_url(ids[0], livemode=livemode, account_id=account_id)
    if all(i.startswith("po_") for i in ids):
        return dashboard_url("payouts", livemode=livemode, account_id=account_id)
    return dashboard_url(livemode=livemode, account_id=account_id)


_NO_RESULT_YET = frozenset({"deferred", "up_for_reschedule"})
"""Task states whose try ends before the task has a result: Airflow still computes the links
then, and pulling the missing result would log a red ``XCom not found`` on healthy runs."""


class StripeDashboardLink(BaseOperatorLink):
    """Link from a Stripe task to what it created or watched, in the Stripe Dashboard."""

    name = "Stripe Dashboard"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        pull = getattr(ti_key, "xcom_pull", None)
        state = getattr(ti_key, "state", None)
        if pull is None or getattr(state, "value", state) in _NO_RESULT_YET:
            return ""
        result = pull(task_ids=ti_key.task_id, key="return_value", map_indexes=ti_key.map_index)
        meta = result if isinstance(result, Mapping) else {}
        if meta.get("dry_run") or not _ids(result):
            return ""  # nothing to link to (and a failed task's connection may be what failed)
        hook = operator.hook
        livemode, account = meta.get("livemode"), meta.get("account_id")
        return link_for_result(
            result,
            livemode=livemode if isinstance(livemode, bool) else hook.config.livemode,
            account_id=account or hook.account_id,
        )
