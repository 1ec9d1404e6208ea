"""StripeReportRunOperator against the reporting endpoints of tests/servers/stripe_reporting.py.

* a run goes pending -> succeeded and its file is streamed from the files host (authenticated);
* a failed run fails the task with Stripe's error, without retries;
* an interval beyond the report type's ``data_available_end`` fails before any run is created;
* a file the files host does not have (404) fails and leaves no file behind;
* a 100k-row report is downloaded with flat memory (measured in a separate process);
* the deferrable path: the trigger polls to the end in asyncio.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_stripe.errors import StripeReportNotAvailableError
from airflow_provider_stripe.operators.reports import StripeReportRunOperator
from airflow_provider_stripe.triggers.reports import StripeReportRunTrigger
from tests.integration.stripe_task_context import stripe_connection, task_context
from tests.servers.stripe_reporting import LedgerFront, report_lines

pytestmark = pytest.mark.timeout(180)

REPORT = "balance_change_from_activity.itemized.3"
DAY = 1_767_225_600  # 2026-01-01T00:00:00Z


@pytest.fixture
def front(ledger_front: LedgerFront) -> LedgerFront:
    ledger_front.reporting.add_report_type(
        REPORT, data_available_start=DAY - 86_400 * 30, data_available_end=DAY + 86_400
    )
    ledger_front.reporting.pending_polls = 2
    return ledger_front


def _operator(conn: str, path: Path, **kwargs: Any) -> StripeReportRunOperator:
    return StripeReportRunOperator(
        task_id="report",
        stripe_conn_id=conn,
        report_type=REPORT,
        path=str(path),
        interval_start=DAY,
        interval_end=DAY + 86_400,
        poll_interval=0.05,
        deferrable=False,
        **kwargs,
    )


def test_run_succeeds_and_its_file_is_streamed_from_the_files_host(
    front: LedgerFront, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    front.reporting.rows = 1234
    conn = stripe_connection(monkeypatch, front.url)
    target = tmp_path / "reports" / "day.csv"
    result = _operator(conn, target, columns=["balance_transaction_id", "net"], payout="po_123").execute(task_context())
    expected = b"".join(report_lines(1234, ("balance_transaction_id", "net")))
    assert target.read_bytes() == expected
    assert result["size"] == len(expected) and result["path"] == str(target)
    run = front.reporting.runs[result["report_run_id"]]
    assert run["parameters"] == {
        "interval_start": DAY,
        "interval_end": DAY + 86_400,
        "payout": "po_123",
        "columns": ["balance_transaction_id", "net"],
    }
    assert run["status"] == "succeeded" and result["file_id"] == run["result"]["id"]
    retrieves = [r for r in front.records if r.path == f"/v1/reporting/report_runs/{run['id']}"]
    assert len(retrieves) == 3  # pending, pending, succeeded
    assert front.files_host is not None
    (download,) = front.files_host.requests
    assert (
        download[0] == f"/v1/files/{result['file_id']}/contents" and download[1] == "Bearer sk_test_51OperatorTestsKey"
    )
    assert not list(target.parent.glob(".*.part"))


def test_failed_run_fails_without_retries(front: LedgerFront, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from airflow_provider_stripe.compat import AirflowFailException

    front.reporting.outcome = "failed"
    conn = stripe_connection(monkeypatch, front.url)
    with pytest.raises(AirflowFailException, match="failed: An unexpected error occurred while computing the report"):
        _operator(conn, tmp_path / "x.csv").execute(task_context())
    assert not list(tmp_path.iterdir())


def test_interval_not_available_yet_fails_before_creating_a_run(
    front: LedgerFront, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    conn = stripe_connection(monkeypatch, front.url)
    op = _operator(conn, tmp_path / "x.csv")
    op.interval_start, op.interval_end = DAY + 86_400, DAY + 2 * 86_400
    with pytest.raises(StripeReportNotAvailableError, match=r"up to 2026-01-02T00:00:00\+00:00 only.*retry later"):
        op.execute(task_context())
    assert not front.reporting.runs
    assert not [r for r in front.records if r.method == "POST"]


def test_missing_file_fails_and_leaves_nothing(
    front: LedgerFront, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from airflow_provider_stripe.errors import StripeRequestError

    conn = stripe_connection(monkeypatch, front.url)
    op = _operator(conn, tmp_path / "x.csv")
    front.reporting.pending_polls = 0
    original = front.reporting._finish

    def finish_then_lose(run: dict[str, Any]) -> None:
        original(run)
        front.reporting.contents.clear()  # the files host no longer has it

    monkeypatch.setattr(front.reporting, "_finish", finish_then_lose)
    with pytest.raises(StripeRequestError) as info:
        op.execute(task_context())
    assert info.value.http_status == 404
    assert not list(tmp_path.iterdir())


def test_trigger_polls_until_the_run_finishes(front: LedgerFront, monkeypatch: pytest.MonkeyPatch) -> None:
    import stripe

    from tests.integration.stripe_task_context import TEST_KEY

    conn = stripe_connection(monkeypatch, front.url)
    client = stripe.StripeClient(TEST_KEY, base_addresses={"api": front.url})
    run = client.v1.reporting.report_runs.create(
        {"report_type": REPORT, "parameters": {"interval_start": DAY, "interval_end": DAY + 3600}}
    )
    trigger = StripeReportRunTrigger(report_run_id=run.id, stripe_conn_id=conn, poll_interval=0.05)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_stripe.triggers.reports.StripeReportRunTrigger"
    assert "sk_test" not in json.dumps(kwargs)

    async def first_event() -> Any:
        async for event in StripeReportRunTrigger(**kwargs).run():
            return event.payload

    payload = asyncio.run(asyncio.wait_for(first_event(), 30))
    assert payload["status"] == "success" and payload["report_run_id"] == run.id
    assert payload["file_id"] in front.reporting.files


MEMORY_PROBE = textwrap.dedent(
    """
    import json, sys, tracemalloc
    from airflow_provider_stripe.operators.reports import StripeReportRunOperator
    from tests.integration.stripe_task_context import task_context
    conn, path, day = sys.argv[1], sys.argv[2], int(sys.argv[3])
    op = StripeReportRunOperator(task_id="r", stripe_conn_id=conn, report_type=sys.argv[4], path=path,
                                 interval_start=day, interval_end=day + 86400, poll_interval=0.05, deferrable=False)
    op.hook.get_client()  # connection and SDK set up outside the measurement
    tracemalloc.start()
    result = op.execute(task_context())
    print(json.dumps({"peak": tracemalloc.get_traced_memory()[1], "size": result["size"]}))
    """
)


@pytest.mark.scale
@pytest.mark.slow
def test_100k_row_report_downloads_with_flat_memory(
    front: LedgerFront, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, report: Any
) -> None:
    conn = stripe_connection(monkeypatch, front.url)
    peaks = {}
    for rows in (10_000, 100_000):
        front.reporting.rows = rows
        out = subprocess.run(
            [sys.executable, "-c", MEMORY_PROBE, conn, str(tmp_path / f"{rows}.csv"), str(DAY), REPORT],
            capture_output=True, text=True, timeout=120, env=dict(os.environ), check=False,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr[-3000:]
        measured = json.loads(out.stdout.strip().splitlines()[-1])
        assert measured["size"] == (tmp_path / f"{rows}.csv").stat().st_size
        peaks[rows] = measured
    big = peaks[100_000]
    assert big["size"] > 5_000_000
    assert big["peak"] < big["size"] / 4  # never the whole file in memory
    assert big["peak"] < peaks[10_000]["peak"] + 1_000_000  # flat: 10x the rows, about the same peak
    report(
        f"report download: peak {big['peak'] // 1024} KiB for a {big['size'] // 1024} KiB (100k rows) file, "
        f"{peaks[10_000]['peak'] // 1024} KiB for 10k rows"
    )
