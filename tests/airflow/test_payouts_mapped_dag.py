"""The mapped payouts example DAG, run for real with ``dag.test()``: Airflow's real task
runner, XCom, mapping and task state store (AIP-103).

* Against localstripe: the first run of a logical date pays every regional item (two
  mapped batch tasks) and every bonus (mapped single payouts) once; running the same
  logical date again (``dag.test`` deletes the old run and makes a new one, with a new run
  id and an empty state store) pays nothing; the next logical date, on the same references,
  pays nothing either (cross-run protection). Three
  ``dag.test`` runs, about 10 s each.
* Against the recording stub behind the fault proxy (Stripe's idempotency semantics):
  when the first try fails partly for an unknown outcome (a 500), Airflow's retry pays
  the item refused for insufficient funds under a fresh key, which the task state store
  remembered (the saved refusal is never replayed), and the unknown one under its own key;
  when every failure is a definitive refusal, Airflow does not retry and the results are
  published anyway. One ``dag.test`` run each.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_stripe.payouts.keys import REFERENCE_METADATA_KEY, RUN_METADATA_KEY
from airflow_provider_stripe.testing.connection import LOCAL_TEST_KEY, connection_env
from tests import airflow_env
from tests.airflow.dag_helpers import task_states, xcoms
from tests.integration.payout_helpers import (
    FakePayoutsApi,
    eur_items,
    insufficient_funds,
    list_all_payouts,
    write_jsonl,
)
from tests.servers.fault_proxy import FaultProxy
from tests.servers.stub_stripe import StubServer, stripe_error

DAG_ID = "stripe_payouts_mapped"
DAY_1 = datetime(2026, 3, 1, tzinfo=timezone.utc)

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]


@pytest.fixture(scope="module")
def migrated() -> None:
    airflow_env.migrate()


@pytest.fixture
def mapped_dag(migrated: None) -> Any:
    from airflow_provider_stripe.compat import dagbag_module

    DagBag = dagbag_module().DagBag

    bag = DagBag(dag_folder=str(airflow_env.DAGS_FOLDER / f"{DAG_ID}.py"))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag(DAG_ID)


def _use_stripe(monkeypatch: pytest.MonkeyPatch, base_url: str, **fields: Any) -> None:
    for name, value in connection_env("stripe_default", base_url=base_url, **fields).items():
        monkeypatch.setenv(name, value)


def _by_run_and_reference(url: str) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = {}
    for payout in list_all_payouts(url, LOCAL_TEST_KEY):
        key = (payout["metadata"][RUN_METADATA_KEY], payout["metadata"][REFERENCE_METADATA_KEY])
        counts[key] = counts.get(key, 0) + 1
    return counts


def test_each_logical_date_pays_every_mapped_item_once(
    mapped_dag: Any, localstripe: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _use_stripe(monkeypatch, localstripe)
    conf = {
        "region_files": [
            write_jsonl(tmp_path / "north.jsonl", eur_items(4, "north")),
            write_jsonl(tmp_path / "south.jsonl", eur_items(3, "south")),
        ],
        "bonuses": [
            {"reference": "bonus-a", "amount": 5000, "description": "Referral bonus"},
            {"reference": "bonus-b", "amount": 2500},
        ],
    }
    run: Callable[[datetime], Any] = lambda day: mapped_dag.test(logical_date=day, run_conf=conf)  # noqa: E731

    first = run(DAY_1)
    assert str(first.state) == "success", task_states(first)
    regions = xcoms(first, "pay_regions")
    assert [r["summary"]["created"] for r in regions] == [4, 3]
    bonuses = xcoms(first, "pay_bonuses")
    assert [(b["reference"], b["outcome"], b["amount"]) for b in bonuses] == [
        ("bonus-a", "created", 5000),
        ("bonus-b", "created", 2500),
    ]
    after_first = _by_run_and_reference(localstripe)
    assert len(after_first) == 9 and set(after_first.values()) == {1}
    assert len({tag for tag, _ in after_first}) == 4, "each mapped task instance has its own run tag"

    again = run(DAY_1)  # same logical date: a new DagRun (new run id, empty state store)
    assert str(again.state) == "success", task_states(again)
    assert [r["summary"].get("existing") for r in xcoms(again, "pay_regions")] == [4, 3]
    assert [b["outcome"] for b in xcoms(again, "pay_bonuses")] == ["existing", "existing"]
    assert [b["id"] for b in xcoms(again, "pay_bonuses")] == [b["id"] for b in bonuses]
    assert _by_run_and_reference(localstripe) == after_first, "re-running a logical date pays nothing"

    # The next logical date on the same references: cross-run protection (on for explicit
    # references) names the run that paid each one and pays nobody again.
    following = run(DAY_1 + timedelta(days=1))
    assert str(following.state) == "success", task_states(following)
    assert [r["summary"].get("already_paid_by_run") for r in xcoms(following, "pay_regions")] == [4, 3]
    assert {r["paid_by_run"] for region in xcoms(following, "pay_regions") for r in region["results"]} == {first.run_id}
    assert [(b["outcome"], b["id"]) for b in xcoms(following, "pay_bonuses")] == [
        ("already_paid_by_run", b["id"]) for b in bonuses
    ]
    assert _by_run_and_reference(localstripe) == after_first, "the next logical date pays nobody again"


def _refuse_first_try(refusals: Mapping[str, Callable[[], Any]]) -> Callable[[Mapping[str, str]], Any]:
    """A stub ``refuse`` hook: each listed reference's first create gets its answer, later ones pass."""
    answered: set[str] = set()

    def refuse(form: Mapping[str, str]) -> Any:
        reference = form.get(f"metadata[{REFERENCE_METADATA_KEY}]", "")
        if reference in refusals and reference not in answered:
            answered.add(reference)
            return refusals[reference]()
        return None

    return refuse


def _pay_north(mapped_dag: Any, tmp_path: Path, retries: int) -> Any:
    """One ``dag.test()`` run paying five ``north-<n>`` items, ``pay_regions`` retried at once up to ``retries``."""
    pay_regions = mapped_dag.task_dict["pay_regions"]
    pay_regions.retries = retries
    pay_regions.retry_delay = timedelta(0)
    conf = {"region_files": [write_jsonl(tmp_path / "north.jsonl", eur_items(5, "north"))], "bonuses": []}
    return mapped_dag.test(logical_date=DAY_1, run_conf=conf)


def _creates(api: FakePayoutsApi, reference: str) -> list[Any]:
    return [r for r in api.creates if r.form.get(f"metadata[{REFERENCE_METADATA_KEY}]") == reference]


@pytest.mark.airflow_min("3.3", reason="the fresh key of a retried item comes from the task state store")
def test_airflow_retry_pays_a_refused_item_under_a_fresh_key_from_the_state_store(
    mapped_dag: Any,
    stub_stripe: StubServer,
    fault_proxy: Callable[..., FaultProxy],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # north-2 is refused (definitive) and north-3's answer is a 500 (unknown outcome) in the
    # first try: not every failure is definitive, so Airflow retries the task.
    api = FakePayoutsApi(
        _refuse_first_try({"north-2": insufficient_funds, "north-3": lambda: stripe_error(500, "api_error")})
    )
    stub_stripe.responder = api
    proxy = fault_proxy(upstream_url=stub_stripe.url)
    _use_stripe(monkeypatch, proxy.url, max_network_retries=0)

    dag_run = _pay_north(mapped_dag, tmp_path, retries=1)

    assert str(dag_run.state) == "success", task_states(dag_run)
    (summary,) = [r["summary"] for r in xcoms(dag_run, "pay_regions")]
    assert summary["created"] == 2 and summary["existing"] == 3  # the second try
    north_2, north_3 = _creates(api, "north-2"), _creates(api, "north-3")
    assert len(north_2) == 2 and north_2[0].headers["Idempotency-Key"] != north_2[1].headers["Idempotency-Key"]
    assert len(north_3) == 2 and north_3[0].headers["Idempotency-Key"] == north_3[1].headers["Idempotency-Key"]
    assert proxy.stats["replayed"] == 0, "the state store knew the refusal: its key was never reused"
    assert sorted(p["metadata"][REFERENCE_METADATA_KEY] for p in api.payouts) == [f"north-{n}" for n in range(5)]


def test_a_batch_whose_failures_are_all_refusals_is_not_retried_and_publishes_its_results(
    mapped_dag: Any,
    stub_stripe: StubServer,
    fault_proxy: Callable[..., FaultProxy],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    api = FakePayoutsApi(_refuse_first_try({"north-2": insufficient_funds}))
    stub_stripe.responder = api
    _use_stripe(monkeypatch, fault_proxy(upstream_url=stub_stripe.url).url)

    dag_run = _pay_north(mapped_dag, tmp_path, retries=2)

    assert task_states(dag_run)[("pay_regions", 0)] == "failed"
    assert len(_creates(api, "north-2")) == 1, "a definitive refusal is not re-sent by an automatic retry"
    (published,) = xcoms(dag_run, "pay_regions")
    assert published["summary"]["created"] == 4 and published["summary"]["failed"] == 1
    refused = [r for r in published["results"] if r["outcome"] == "failed"]
    assert [r["reference"] for r in refused] == ["north-2"]
    assert len(api.payouts) == 4
