"""StripePayoutSensor in reschedule mode under real Airflow: grace timers survive reschedules.

Each reschedule runs the sensor in a fresh task process, and Airflow clears a task's
XComs at every reschedule, so the first-seen-paid times live in Airflow 3.3's task state
store. ``airflow dags test`` runs a one-task DAG (written to a temporary DAGs folder, own
AIRFLOW_HOME, so the session's example DAGs are untouched) on payouts that are already
paid: with a 3 s grace period and 1 s pokes, the sensor must reschedule and then succeed
without restarting the grace period.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import requests

from airflow_provider_stripe.testing.connection import LOCAL_TEST_KEY, connection_env
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
            grace_period=3,
            poll_interval=1,
            timeout=120,
        )
    """
)


@pytest.mark.airflow_min("3.3", reason="grace timers survive reschedules in the task state store")
def test_reschedule_mode_keeps_grace_timers_across_reschedules(localstripe: str, tmp_path: Path) -> None:
    session = requests.Session()
    session.auth = (LOCAL_TEST_KEY, "")
    ids = [
        session.post(
            f"{localstripe}/v1/payouts", data={"amount": 500, "currency": "eur", "status": "paid"}, timeout=5
        ).json()["id"]
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
        **connection_env("stripe_default", base_url=localstripe),
    )
    airflow = [sys.executable, "-m", "airflow"]
    migrate = subprocess.run([*airflow, "db", "migrate"], env=env, capture_output=True, text=True, timeout=180)
    assert migrate.returncode == 0, migrate.stderr[-3000:]

    run = subprocess.run(
        [*airflow, "dags", "test", "payout_sensor_reschedule"], env=env, capture_output=True, text=True, timeout=180
    )
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-5000:]
    countdown = [int(s) for s in re.findall(r"paid \(grace period\): 5\); the next grace period ends in (\d+)s", log)]
    assert len(countdown) >= 2, log[-5000:]  # at least two pokes in separate task runs
    assert countdown == sorted(countdown, reverse=True) and countdown[-1] < 3, "the grace period never restarted"
    assert "new_state=up_for_reschedule" in log
    assert "Stripe payouts: all 5 payouts are paid" in log
