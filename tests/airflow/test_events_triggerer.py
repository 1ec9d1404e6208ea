"""StripeEventTrigger as an asset watcher in a real ``airflow triggerer``, restarted mid-stream.

Proves the production path of the cursor: the triggerer hands the trigger the watched
asset's state store (AIP-103), the trigger saves its cursor there, and a restarted
triggerer resumes from it -- every payout outcome becomes exactly one asset event, including
the one created while the triggerer was down.

Runs in its own AIRFLOW_HOME and SQLite DB (migrated here), so the triggerer sees only this
test's watcher and no trigger left behind by other tests. The metadata DB is read with
``sqlite3``: this process's SQLAlchemy is bound to the session's DB.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests

from tests import airflow_env
from tests.airflow.dag_helpers import Triggerer, run_triggerer
from tests.servers.localstripe_server import TEST_API_KEY

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

CONN_ID = "stripe_trigger_test"
ASSET_URI = "stripe://polled/restart-test"
DAG_FILE = textwrap.dedent(
    f"""
    from datetime import datetime

    from airflow.sdk import DAG, Asset, AssetWatcher

    from airflow_provider_stripe.triggers.events import StripeEventTrigger

    trigger = StripeEventTrigger(
        stripe_conn_id={CONN_ID!r}, types=["payout.paid", "payout.failed"], poll_interval=1, lookback=5
    )
    outcomes = Asset(name="restart_test", uri={ASSET_URI!r}, watchers=[AssetWatcher(name="w", trigger=trigger)])
    with DAG(dag_id="stripe_trigger_restart", schedule=[outcomes], start_date=datetime(2025, 1, 1)):
        pass
    """
)
T = TypeVar("T")


class Home:
    """A private Airflow installation: environment, CLI runner, DB reader."""

    def __init__(self, root: Path, localstripe: str) -> None:
        self.root = root
        self.db = root / "airflow.db"
        (root / "dags").mkdir()
        (root / "dags" / "stripe_trigger_restart.py").write_text(DAG_FILE)
        extra = {"api_key": TEST_API_KEY, "webhook_secret": "whsec_unused", "base_url": localstripe}
        self.env = airflow_env.airflow_env(
            AIRFLOW_HOME=str(root),
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{self.db}",
            AIRFLOW__CORE__DAGS_FOLDER=str(root / "dags"),
            # Airflow runs the watchers of assets used by active, unpaused DAGs only.
            AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
            **{f"AIRFLOW_CONN_{CONN_ID.upper()}": json.dumps({"conn_type": "stripe", "extra": extra})},
            PYTHONUNBUFFERED="1",
        )

    def cli(self, *args: str) -> None:
        result = subprocess.run(
            [str(airflow_env.BIN / "airflow"), *args], env=self.env, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, f"airflow {' '.join(args)}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with contextlib.closing(sqlite3.connect(self.db, timeout=10)) as db:
            return db.execute(sql).fetchall()

    def fired(self) -> list[str]:
        """Object ids (payouts) of the asset events recorded from the trigger, in order."""
        rows = self.query(
            "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
            f"WHERE a.uri = '{ASSET_URI}' ORDER BY e.id"
        )
        return [json.loads(extra)["payload"]["object_id"] for (extra,) in rows]

    def cursor(self) -> dict[str, Any] | None:
        rows = self.query("SELECT s.value FROM asset_state_store s JOIN asset a ON a.id = s.asset_id")
        return json.loads(rows[0][0]) if rows else None

    def triggerer(self, log_name: str) -> contextlib.AbstractContextManager[Triggerer]:
        return run_triggerer(self.env, self.root / log_name)


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, log: Path) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := probe():
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}; triggerer log:\n{log.read_text(errors='replace')[-5000:]}")


def payout(base_url: str, status: str) -> str:
    resp = requests.post(
        f"{base_url}/v1/payouts",
        data={"amount": 700, "currency": "eur", "status": status},
        auth=(TEST_API_KEY, ""),
        timeout=5,
    )
    resp.raise_for_status()
    return str(resp.json()["id"])


def seen_ids(cursor: dict[str, Any] | None) -> set[str]:
    return {event_id for event_id, _ in (cursor or {}).get("seen", [])}


@pytest.mark.airflow_min("3.3", reason="the cursor survives a restart in the asset state store (AIP-103)")
def test_cursor_survives_a_triggerer_restart(localstripe: str) -> None:
    with tempfile.TemporaryDirectory(prefix="airflow-stripe-triggerer-") as tmp:
        home = Home(Path(tmp), localstripe)
        home.cli("db", "migrate")
        home.cli("dags", "reserialize")
        assert home.query(f"SELECT count(*) FROM asset WHERE uri = '{ASSET_URI}'") == [(1,)]
        assert home.query("SELECT count(*) FROM asset_watcher") == [(1,)]

        with home.triggerer("triggerer-1.log") as triggerer:
            log = triggerer.log
            # Started from "now", the cursor is saved in the asset's state store at once.
            wait_for("the initial cursor", home.cursor, 120, log)
            first = payout(localstripe, "paid")
            time.sleep(1.1)
            second = payout(localstripe, "failed")
            wait_for("two asset events", lambda: len(home.fired()) >= 2 or None, 60, log)
            # The batch's cursor is saved one poll interval after the batch: wait for it.
            wait_for("the cursor to pass both", lambda: {first, second} <= objects(localstripe, home.cursor()), 30, log)
        assert home.fired() == [first, second]
        assert "Polling Stripe events" not in log.read_text(errors="replace")  # no failed polls

        third = payout(localstripe, "paid")  # while no triggerer runs

        with home.triggerer("triggerer-2.log") as triggerer:
            log = triggerer.log
            wait_for("the event created during the downtime", lambda: len(home.fired()) >= 3 or None, 120, log)
            time.sleep(4)  # several more polls: nothing may be replayed
        assert home.fired() == [first, second, third]
        text = log.read_text(errors="replace")
        assert "Traceback" not in text and "Polling Stripe events" not in text


def objects(localstripe: str, cursor: dict[str, Any] | None) -> set[str]:
    """Payout ids of the events the cursor remembers as fired."""
    ids = seen_ids(cursor)
    if not ids:
        return set()
    events = [requests.get(f"{localstripe}/v1/events/{i}", auth=(TEST_API_KEY, ""), timeout=5).json() for i in ids]
    return {event["data"]["object"]["id"] for event in events}
