"""A declined charge in the charges example DAG, run for real with ``dag.test()``.

Against the recording stub behind the fault proxy (Stripe's idempotency semantics), the
first authorization of order A-1001 is declined. With ``retries=2`` on ``authorize``,
Airflow's real task runner must not retry it (``AirflowFailException``: Stripe would
replay the same refusal), the other mapped instance is charged, and the real task state
store (AIP-103) holds the declined request's next key generation, which a clear of the
task would use (the clear itself is covered at execute level in
``tests/integration/test_charge_refusals.py``). One ``dag.test`` run, about 10 s.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from airflow_provider_stripe.payouts.ledger import GENERATION_STATE_PREFIX
from airflow_provider_stripe.testing.connection import connection_env
from tests import airflow_env
from tests.integration.charge_helpers import FakeChargesApi, decline_first
from tests.servers.fault_proxy import FaultProxy
from tests.servers.stub_stripe import StubServer

DAG_ID = "stripe_charge_capture_refund"

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]


@pytest.fixture(scope="module")
def migrated() -> None:
    airflow_env.migrate()


def _task_instances(dag_run: Any, task_id: str) -> dict[int, tuple[str, int]]:
    """``map_index -> (state, try_number)`` of one task in the run."""
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = dag_run.get_task_instances(session=session)
        return {ti.map_index: (str(ti.state), ti.try_number) for ti in tis if ti.task_id == task_id}


def _stored(dag_run: Any, task_id: str, map_index: int) -> dict[str, Any]:
    """What the real task state store holds for one task instance."""
    from airflow.models.task_state_store import TaskStateStoreModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(TaskStateStoreModel).where(
                TaskStateStoreModel.dag_id == dag_run.dag_id,
                TaskStateStoreModel.run_id == dag_run.run_id,
                TaskStateStoreModel.task_id == task_id,
                TaskStateStoreModel.map_index == map_index,
            )
        )
        return {row.key: json.loads(row.value) for row in rows}


@pytest.mark.airflow_min("3.3", reason="reads the next idempotency key from the task state store")
def test_declined_authorization_is_not_retried_and_its_next_key_is_stored(
    migrated: None, stub_stripe: StubServer, fault_proxy: Callable[..., FaultProxy], monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_stripe.compat import dagbag_module

    DagBag = dagbag_module().DagBag

    api = FakeChargesApi(decline_first(match={"metadata[order_id]": "A-1001"}))
    stub_stripe.responder = api
    proxy = fault_proxy(upstream_url=stub_stripe.url)
    for name, value in connection_env("stripe_default", base_url=proxy.url).items():
        monkeypatch.setenv(name, value)
    bag = DagBag(dag_folder=str(airflow_env.DAGS_FOLDER / f"{DAG_ID}.py"))
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag(DAG_ID)
    authorize = dag.task_dict["authorize"]
    authorize.retries = 2  # would retry anything retryable at once
    authorize.retry_delay = timedelta(0)

    dag_run = dag.test()

    assert str(dag_run.state) == "failed"
    states = _task_instances(dag_run, "authorize")
    assert states[0] == ("failed", 1), f"the declined charge must fail without retries: {states}"
    assert states[1][0] == "success"
    orders = [str(r.form.get("metadata[order_id]")) for r in api.creates]
    assert sorted(orders) == ["A-1001", "A-1002"], "one request per order: no automatic retry"
    assert [c["metadata"]["order_id"] for c in api.charges] == ["A-1002"]
    assert _stored(dag_run, "authorize", 0) == {GENERATION_STATE_PREFIX + "charges.create": 1}
    assert _stored(dag_run, "authorize", 1) == {}, "a charge that went through leaves nothing behind"
