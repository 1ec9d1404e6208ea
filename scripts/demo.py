"""Run the example payout batch DAG end to end, on this machine, in well under a minute.

What it does:

1. makes a throwaway Airflow installation (temporary ``AIRFLOW_HOME``, SQLite,
   ``airflow db migrate``, DAGs folder = ``dags_examples/``);
2. points the ``stripe_default`` connection at a Stripe-compatible server:

   * by default a real **localstripe** behind the provider's Stripe-faithful front (what
     ``python -m airflow_provider_stripe.testing.localstripe`` serves), started on 127.0.0.1
     in a child process (no Stripe account needed), plus a clearly labelled **settlement simulator** that plays the bank
     and marks payouts paid after a short delay -- localstripe never settles payouts by
     itself, real Stripe does;
   * with ``STRIPE_API_KEY=sk_test_...`` in the environment, **Stripe's test mode** instead
     (no local server, no simulator: payouts settle when Stripe settles them). The account
     needs available balance in the instructions' currency (the sample is EUR; pass
     ``--instructions`` for another file). Live keys are refused.

3. runs ``stripe_payout_batch`` once with ``dag.test()`` on ``dags_examples/data/payouts/sample.jsonl``:
   create the payouts exactly once, wait for them with the deferrable sensor (its trigger
   runs inline), report;
4. prints the payouts created, their ids and statuses as Stripe reports them, and the time
   taken; exits 0 when the run succeeded.

Usage: ``scripts/demo.sh`` or ``.venv/bin/python scripts/demo.py [--verbose] [--timeout S]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DAGS_FOLDER = REPO / "dags_examples"
SAMPLE = DAGS_FOLDER / "data" / "payouts" / "sample.jsonl"
DAG_ID = "stripe_payout_batch"
CONN_ID = "stripe_default"


def _say(message: str = "") -> None:
    print(message, flush=True)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instructions", type=Path, default=SAMPLE, help="JSON Lines payout instructions")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds the sensor may wait (default 120)")
    parser.add_argument("--settle-after", type=float, default=2.0, help="simulated bank delay, seconds (local only)")
    parser.add_argument("--verbose", action="store_true", help="show Airflow's and the tasks' INFO logs")
    return parser.parse_args(argv)


def _configure_airflow(home: Path, *, verbose: bool) -> None:
    """Environment for a throwaway Airflow; must run before anything imports ``airflow``."""
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO" if verbose else "WARNING",
        }
    )


def _migrate() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True, text=True, timeout=300
    )
    if result.returncode != 0:
        raise SystemExit(f"airflow db migrate failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")


@contextlib.contextmanager
def _stripe_target(args: argparse.Namespace) -> Iterator[str]:
    """Set the connection; yield a description. Local: start localstripe and the simulated bank."""
    from airflow_provider_stripe.connection.config import ALLOWED_BASE_URLS_ENV
    from airflow_provider_stripe.testing.connection import LOCAL_TEST_KEY, connection_env

    api_key = os.environ.get("STRIPE_API_KEY")
    if api_key:
        if not api_key.startswith(("sk_test_", "rk_test_")):
            raise SystemExit("STRIPE_API_KEY must be a test-mode key (sk_test_... or rk_test_...): this demo pays out")
        os.environ.update(connection_env(CONN_ID, api_key=api_key))
        yield "Stripe test mode (api.stripe.com, your test key)"
        return

    from airflow_provider_stripe.testing.localstripe import run_localstripe
    from airflow_provider_stripe.testing.settlement import SettlementSimulator

    with run_localstripe() as url:
        # As the Airflow admin would: allow the key to go to this local server (and nowhere else).
        os.environ[ALLOWED_BASE_URLS_ENV] = url
        os.environ.update(connection_env(CONN_ID, base_url=url))
        _say(
            f"[simulation] settlement simulator on: localstripe never settles payouts, so a thread plays the bank "
            f"and marks each payout paid {args.settle_after:g}s after it appears (real Stripe does this itself)"
        )
        with SettlementSimulator(url, LOCAL_TEST_KEY, delay=args.settle_after) as bank:
            yield f"localstripe behind the front at {url} (local, no Stripe account)"
        _say(f"[simulation] the simulated bank settled {len(bank.settled)} payout(s)")


def _load_dag() -> Any:
    from airflow_provider_stripe.compat import dagbag_module

    DagBag = dagbag_module().DagBag

    bag = DagBag(dag_folder=str(DAGS_FOLDER / f"{DAG_ID}.py"))
    if bag.import_errors:
        raise SystemExit(f"the example DAG does not parse: {bag.import_errors}")
    return bag.get_dag(DAG_ID)


def _xcom(dag_run: Any, task_id: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        query = XComModel.get_many(run_id=dag_run.run_id, dag_ids=DAG_ID, task_ids=task_id, key="return_value")
        row = session.scalars(query).first()
        return XComModel.deserialize_value(row) if row is not None else None


def _print_tasks(dag_run: Any) -> None:
    from airflow.utils.session import create_session

    with create_session() as session:
        for ti in sorted(dag_run.get_task_instances(session=session), key=lambda t: t.start_date or 0):
            took = f"{ti.duration:.1f}s" if ti.duration is not None else "-"
            _say(f"  task {ti.task_id:<18} {ti.state!s:<8} {took}")


def _print_payouts(results: list[dict[str, Any]]) -> None:
    """Each created payout as Stripe reports it now (one retrieve each: the demo's batch is small)."""
    from airflow_provider_stripe.hooks.stripe import StripeHook
    from airflow_provider_stripe.validation import format_amount

    client = StripeHook(CONN_ID).get_client()
    for item in results:
        payout = client.v1.payouts.retrieve(item["payout_id"])
        amount = format_amount(payout.amount, payout.currency)
        _say(f"  {payout.id}  {amount:>14}  {payout.status:<8} {item.get('reference', '')}")


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    started = time.monotonic()
    local = not os.environ.get("STRIPE_API_KEY")
    with tempfile.TemporaryDirectory(prefix="stripe-payout-demo-") as home:
        _configure_airflow(Path(home), verbose=args.verbose)
        _say(f"Airflow home: {home} (temporary); migrating the metadata database ...")
        _migrate()
        _say(f"Database ready after {time.monotonic() - started:.1f}s")
        with _stripe_target(args) as target:
            _say(f"Stripe: {target}")
            _say(f"Running DAG {DAG_ID} on {args.instructions} ...")
            dag = _load_dag()
            dag.get_task("wait_for_payouts").timeout = args.timeout  # dag.test() runs this very object
            conf = {"instructions_file": str(args.instructions), "poll_seconds": 1.0 if local else 10.0}
            dag_run = dag.test(run_conf=conf)
            report = _xcom(dag_run, "report") or {}
            batch = _xcom(dag_run, "create_payouts") or {}
            _say()
            _say(f"DAG run {dag_run.run_id}: {dag_run.state}")
            _print_tasks(dag_run)
            created = [r for r in batch.get("results", []) if r.get("payout_id")]
            if batch:
                _say(f"Payout batch summary: {batch.get('summary')}")
            if created:
                _say(f"{len(created)} payouts created; as Stripe reports them now:")
                _print_payouts(created)
            if report:
                _say(f"Report: {report.get('paid')} of {report.get('instructions')} payouts paid")
    elapsed = time.monotonic() - started
    ok = str(dag_run.state) == "success"
    _say(f"{'SUCCESS' if ok else 'FAILED'}: demo finished in {elapsed:.1f}s")
    if not ok and not local:
        _say("In Stripe test mode payouts settle when Stripe settles them; a timeout means they were still pending.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
