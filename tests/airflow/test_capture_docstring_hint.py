"""The capture operator's ``charge_id`` hint, taken from its docstring, works in a real ``dag.test()``.

A DAG file written here charges (authorize only) against localstripe, then captures with
``charge_id=`` exactly the expression the docstring suggests (its ``create_task`` being the
create task, ``task_id="create_charge"``). ``airflow dags test`` runs it in an Airflow home of
its own (its DAGs folder holds only that file); the run must succeed and the charge be captured.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import stripe

from airflow_provider_stripe.operators.charges import StripeCaptureChargeOperator
from airflow_provider_stripe.testing.connection import LOCAL_TEST_KEY, connection_env
from tests import airflow_env

DAG_ID = "capture_hint"

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

DAG_FILE = """
from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_stripe.operators.charges import StripeCaptureChargeOperator, StripeCreateChargeOperator

with DAG("{dag_id}", schedule=None, start_date=datetime(2026, 1, 1)):
    create_task = StripeCreateChargeOperator(
        task_id="create_charge", amount=2000, currency="eur", source="pm_card_visa", capture=False
    )
    create_task >> StripeCaptureChargeOperator(task_id="capture", charge_id={hint})
"""


def docstring_hint() -> str:
    """The expression the docstring of ``StripeCaptureChargeOperator``'s ``charge_id`` suggests."""
    doc = StripeCaptureChargeOperator.__doc__ or ""
    match = re.search(r":param charge_id:.*?e\.g\.\s+``(.+?)``", doc, re.S)
    assert match, "StripeCaptureChargeOperator's docstring gives no charge_id example (e.g. ``...``)"
    return match.group(1)


def test_the_docstring_charge_id_hint_captures_the_created_charge(localstripe: str, tmp_path: Path) -> None:
    home = tmp_path / "airflow"
    (home / "dags").mkdir(parents=True)
    (home / "dags" / f"{DAG_ID}.py").write_text(DAG_FILE.format(dag_id=DAG_ID, hint=docstring_hint()))
    env = {k: v for k, v in airflow_env.airflow_env().items() if not k.startswith("AIRFLOW")}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__STRIPE__ALLOWED_BASE_URLS": airflow_env.LOCAL_ALLOWED_BASE_URLS,
            **connection_env("stripe_default", base_url=localstripe),
        }
    )
    airflow = str(airflow_env.BIN / "airflow")
    for command in (["db", "migrate"], ["dags", "test", DAG_ID]):
        result = subprocess.run([airflow, *command], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"airflow {' '.join(command)} failed:\n{(result.stdout + result.stderr)[-5000:]}"

    (charge,) = stripe.StripeClient(LOCAL_TEST_KEY, base_addresses={"api": localstripe}).v1.charges.list().data
    assert charge.captured is True and charge.amount == 2000
