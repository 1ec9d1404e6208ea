"""OpenLineage facets of the export, reconciliation and report operators, after real runs.

The facets are built with the real OpenLineage classes (the test extra installs the
provider); a separate process proves the operators import and run without it.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import stripe

from airflow_provider_stripe.exports.resources import RESOURCES
from airflow_provider_stripe.operators.exports import StripeExportOperator
from airflow_provider_stripe.operators.reconciliation import RECONCILIATION_COLUMNS, StripePayoutReconciliationOperator
from airflow_provider_stripe.operators.reports import StripeReportRunOperator
from tests.integration.stripe_task_context import TEST_KEY, stripe_connection, task_context
from tests.servers.stripe_reporting import LedgerFront

pytestmark = pytest.mark.timeout(120)


def _fields(dataset: Any) -> list[tuple[str, str]]:
    return [(f.name, f.type) for f in dataset.facets["schema"].fields]


def test_export_lineage(
    ledger_front: LedgerFront, localstripe: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from airflow.providers.openlineage.extractors import OperatorLineage

    client = stripe.StripeClient(TEST_KEY, base_addresses={"api": localstripe})
    start = int(time.time())
    for i in range(3):
        client.v1.customers.create({"email": f"l{i}@example.com"})
    conn = stripe_connection(monkeypatch, ledger_front.url)
    target = tmp_path / "out" / "customers.parquet"
    op = StripeExportOperator(
        task_id="e", stripe_conn_id=conn, resource="customers", path=str(target), file_format="parquet",
        created_gte=start, created_lt=int(time.time()) + 1, account_id="acct_1Connected",
    )  # fmt: skip
    assert op.get_openlineage_facets_on_complete(None) is None  # nothing ran yet: nothing to report
    # localstripe ignores Stripe-Account: the connected account's export reads the same objects.
    op.execute(task_context())
    lineage = op.get_openlineage_facets_on_complete(None)
    assert isinstance(lineage, OperatorLineage)
    assert [(d.namespace, d.name) for d in lineage.inputs] == [("stripe://acct_1Connected", "customers")]
    (output,) = lineage.outputs
    assert (output.namespace, output.name) == ("file", str(target.resolve()))
    assert [name for name, _ in _fields(output)] == [name for name, _ in RESOURCES["customers"].columns]
    assert dict(_fields(output))["created"] == "TIMESTAMP" and dict(_fields(output))["livemode"] == "BOOLEAN"
    stats = output.facets["outputStatistics"]
    assert stats.rowCount == 3 and stats.size == target.stat().st_size


def test_reconciliation_and_report_lineage(
    ledger_front: LedgerFront, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    conn = stripe_connection(monkeypatch, ledger_front.url)
    payout = ledger_front.ledger.add_automatic_payout([{"amount": 1000, "fee": 30, "source": "ch_x"}])
    recon = StripePayoutReconciliationOperator(
        task_id="r", stripe_conn_id=conn, path=str(tmp_path / "r.csv"), payout_ids=payout["id"], file_format="csv"
    )
    recon.execute(task_context())
    lineage = recon.get_openlineage_facets_on_complete(None)
    assert [(d.namespace, d.name) for d in lineage.inputs] == [
        ("stripe://platform", "payouts"),
        ("stripe://platform", "balance_transactions"),
    ]
    assert [n for n, _ in _fields(lineage.outputs[0])] == [n for n, _ in RECONCILIATION_COLUMNS]
    assert lineage.outputs[0].facets["outputStatistics"].rowCount == 2

    day = 1_767_225_600
    ledger_front.reporting.add_report_type(
        "payout_reconciliation.itemized.5", data_available_start=0, data_available_end=day
    )
    ledger_front.reporting.pending_polls = 0
    report = StripeReportRunOperator(
        task_id="rep", stripe_conn_id=conn, report_type="payout_reconciliation.itemized.5",
        path=str(tmp_path / "rep.csv"), interval_start=day - 86_400, interval_end=day, deferrable=False,
        poll_interval=0.05,
    )  # fmt: skip
    report.execute(task_context())
    lineage = report.get_openlineage_facets_on_complete(None)
    assert [(d.namespace, d.name) for d in lineage.inputs] == [
        ("stripe://platform", "reporting/payout_reconciliation.itemized.5")
    ]
    assert _fields(lineage.outputs[0])[:2] == [("balance_transaction_id", "STRING"), ("created_utc", "STRING")]


def test_object_storage_output_dataset(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_stripe.exports.lineage import path_dataset

    assert path_dataset(ObjectStoragePath("s3://warehouse/stripe/charges/2026-01-01.parquet")) == (
        "s3://warehouse",
        "stripe/charges/2026-01-01.parquet",
    )


@pytest.mark.slow
def test_importable_and_silent_without_openlineage(tmp_path: Path) -> None:
    probe = textwrap.dedent(
        """
        import sys
        sys.modules["airflow.providers.openlineage.extractors"] = None  # as if not installed
        sys.modules["openlineage"] = None
        from airflow_provider_stripe.exports.lineage import LineageRecord, operator_lineage
        from airflow_provider_stripe.operators.exports import StripeExportOperator
        from airflow_provider_stripe.operators.reconciliation import StripePayoutReconciliationOperator
        from airflow_provider_stripe.operators.reports import StripeReportRunOperator
        op = StripeExportOperator(task_id="e", resource="charges", path="/tmp/x")
        inputs = (("stripe://platform", "charges"),)
        op.stripe_lineage = LineageRecord(inputs=inputs, output=("file", "/tmp/x"), columns=())
        assert op.get_openlineage_facets_on_complete(None) is None
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]
