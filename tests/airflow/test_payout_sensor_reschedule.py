"""StripePayoutSensor in reschedule mode under real Airflow: the settle period survives reschedules.

Each reschedule runs the sensor in a fresh task process and nothing is carried between
them: the settle period counts from Stripe's ``arrival_date``, so it works on every Airflow
version. ``airflow dags test`` runs a one-task DAG (written to a temporary DAGs folder, own
AIRFLOW_HOME, so the session's example DAGs are untouched); once its first poke has seen the
payouts pending, they are paid: with a 15 s settle period and 1 s pokes (a task run takes
2-3 s on Airflow 3.1), the sensor must reschedule, count down from ``arrival_date`` across
task processes, and then succeed.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_stripe.testing.connection import LOCAL_TEST_KEY, connection_env
from airflow_provider_stripe.testing.settlement import PAID
from tests import airflow_env

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

DAG_FILE = textwrap.dedent(
    """
    import os
    from datetime import datetime

    from airflow.sdk import DAG

    from airflow_provider_stripe.sensors.payouts import StripePayoutSensor

    with DAG(dag_id="payout_sensor_reschedule", schedule=None, start_date=datetime(2025, 1, 1)):
        StripePayoutSensor(
            task_id="wait_for_payouts",
            payout_ids=os.environ["PAYOUT_IDS"].split(","),
            mode="reschedule",
            settle_period=float(os.environ["SETTLE_PERIOD"]),
            poll_interval=1,
            timeout=120,
        )
    """
)


PENDING_POKE = "Stripe payouts: 5 of 5 payouts not settled yet (pending: 5)"
SUCCESS = "Stripe payouts: all 5 payouts are paid"
SETTLE_S = 15


def test_reschedule_mode_counts_the_settle_period_from_arrival_date(localstripe: str, tmp_path: Path) -> None:
    session = requests.Session()
    session.auth = (LOCAL_TEST_KEY, "")
    ids = [
        session.post(f"{localstripe}/v1/payouts", data={"amount": 500, "currency": "eur"}, timeout=5).json()["id"]
        for _ in range(5)
    ]
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "payout_sensor_reschedule.py").write_text(DAG_FILE)
    home = tmp_path / "home"
    env = airflow_env.airflow_env(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
        PAYOUT_IDS=",".join(ids),
        SETTLE_PERIOD=str(SETTLE_S),
        PYTHONUNBUFFERED="1",
        **connection_env("stripe_default", base_url=localstripe),
    )
    airflow = [sys.executable, "-m", "airflow"]
    migrate = subprocess.run([*airflow, "db", "migrate"], env=env, capture_output=True, text=True, timeout=180)
    assert migrate.returncode == 0, migrate.stderr[-3000:]

    lines: list[str] = []
    succeeded_at: list[float] = []
    pending_seen = threading.Event()

    def read(stream: Any) -> None:
        for line in stream:
            lines.append(line)
            if PENDING_POKE in line:
                pending_seen.set()
            if SUCCESS in line:
                succeeded_at.append(time.time())

    with subprocess.Popen(
        [*airflow, "dags", "test", "payout_sensor_reschedule"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as run:
        reader = threading.Thread(target=read, args=(run.stdout,), daemon=True)
        reader.start()
        try:
            assert pending_seen.wait(150), "".join(lines)[-5000:]
            for payout_id in ids:  # the bank pays them now: arrival_date = now, as Stripe sets it
                session.post(
                    f"{localstripe}/v1/payouts/{payout_id}", json=PAID.form(payout_id, time.time()), timeout=5
                ).raise_for_status()
            run.wait(150)
        finally:
            run.kill()
        reader.join(10)
    log = "".join(lines)
    assert run.returncode == 0, log[-5000:]
    countdown = [int(s) for s in re.findall(r"paid \(settle period\): 5\); the next settle period ends in (\d+)s", log)]
    assert len(countdown) >= 2, log[-5000:]  # at least two pokes in separate task runs
    # Counted from arrival_date, not restarted by each new task process.
    assert countdown == sorted(countdown, reverse=True) and countdown[-1] < countdown[0], countdown
    assert "new_state=up_for_reschedule" in log
    arrival = session.get(f"{localstripe}/v1/payouts/{ids[0]}", timeout=5).json()["arrival_date"]
    assert succeeded_at and succeeded_at[0] >= arrival + SETTLE_S, "succeeded before arrival_date + settle period"
