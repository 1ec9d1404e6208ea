"""The payout engine's pure parts: instructions, sources, keys, progress (no server needed)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_stripe.errors import SourceError, StripeBatchInputError, StripeInputError, StripeRequestError
from airflow_provider_stripe.hooks.idempotency import in_flight, used_elsewhere, was_replayed
from airflow_provider_stripe.payouts import sources
from airflow_provider_stripe.payouts.instructions import check_instruction, instruction_from_params
from airflow_provider_stripe.payouts.keys import PayoutIdentity, ReferenceScope
from airflow_provider_stripe.payouts.ledger import BatchLedger, ItemState
from airflow_provider_stripe.payouts.results import ItemResult, ResultSink
from airflow_provider_stripe.payouts.sources import iter_source, validate_batch


def _context(**ti: Any) -> dict[str, Any]:
    fields = {"dag_id": "d", "run_id": "manual__1", "task_id": "t", "map_index": -1, "try_number": 1, **ti}
    return {"ti": SimpleNamespace(**fields), "logical_date": datetime(2026, 1, 1, tzinfo=timezone.utc)}


# -- keys ------------------------------------------------------------------------------------


def test_keys_are_stable_across_tries_and_differ_per_run_task_map_index_reference_generation() -> None:
    base = PayoutIdentity.from_context(_context())
    retry = PayoutIdentity.from_context(_context(try_number=3, run_id="manual__other"))  # same logical date
    assert retry.payout_key("a", 0) == base.payout_key("a", 0) and retry.tag == base.tag
    variants = [
        PayoutIdentity.from_context({**_context(), "logical_date": datetime(2026, 1, 2, tzinfo=timezone.utc)}),
        PayoutIdentity.from_context(_context(task_id="other")),
        PayoutIdentity.from_context(_context(map_index=0)),
        PayoutIdentity.from_context(_context(dag_id="other")),
    ]
    keys = {base.payout_key("a", 0), base.payout_key("b", 0), base.payout_key("a", 1)}
    keys |= {v.payout_key("a", 0) for v in variants}
    assert len(keys) == 7 and all(len(k) <= 255 for k in keys)
    no_date = PayoutIdentity.from_context({**_context(), "logical_date": None})
    assert no_date.run == "manual__1"
    # Byte-identical to the keys and tag of the first release: runs in flight keep them.
    assert base.payout_key("a", 0) == "airflow-payout-bb49b9d7fc5897c1bcb2b2d411cf008bcd62ff711006506f3e467539cea20031"
    assert base.payout_key("a", 1) == "airflow-payout-e902068177e2432fc29d0216ca268be7d28163636645a01ad3f3083be4ee75fd"
    assert base.tag == "60fabc6ba2304612360a7fd10ce8e5bf"


def test_reference_keys_are_the_same_for_every_run_and_dag_and_differ_per_account_scope_reference() -> None:
    key = ReferenceScope("account").key("inv-1", 0)
    assert ReferenceScope("account", None).key("inv-1", 0) == key, "no run, DAG or task in a reference key"
    others = {
        ReferenceScope("account", "acct_1").key("inv-1", 0),
        ReferenceScope("payroll").key("inv-1", 0),
        ReferenceScope("account").key("inv-2", 0),
        ReferenceScope("account").key("inv-1", 1),
        PayoutIdentity.from_context(_context()).payout_key("inv-1", 0),
    }
    assert key not in others and len(others) == 5
    assert key == "airflow-payout-" + key.removeprefix("airflow-payout-") and len(key) == len("airflow-payout-") + 64
    stamp = PayoutIdentity.from_context(_context()).stamp("inv-1", ReferenceScope("payroll"))
    assert stamp["airflow_payout_scope"] == "payroll" and "airflow_payout_scope" not in (
        PayoutIdentity.from_context(_context()).stamp("inv-1")
    )


def test_fresh_keys_only_after_a_definitive_refusal() -> None:
    def error(status: int | None, kind: str = "invalid_request_error") -> StripeRequestError:
        return StripeRequestError(
            operation="x", error_type=kind, code=None, message="m", request_id=None, http_status=status
        )

    assert error(400).is_definitive and error(402, "card_error").is_definitive
    for not_fresh in (error(None, "api_connection_error"), error(500), error(409), error(429)):
        assert not not_fresh.is_definitive
    assert not error(400, "idempotency_error").is_definitive, "the key may have paid with other params"
    assert used_elsewhere(error(400, "idempotency_error")) and not used_elsewhere(error(409, "idempotency_error"))
    assert in_flight(error(409, "idempotency_error")) and not in_flight(error(409, "api_error"))
    assert not in_flight(error(400, "idempotency_error"))
    assert was_replayed(SimpleNamespace(headers={"Idempotent-Replayed": "true"}))
    assert not was_replayed(SimpleNamespace(headers={})) and not was_replayed(None)


# -- instructions ------------------------------------------------------------------------------


def test_instruction_reference_defaults_to_a_content_hash() -> None:
    one, _ = check_instruction({"amount": 100, "currency": "EUR", "metadata": {"a": 1}}, 0)
    same, _ = check_instruction({"metadata": {"a": "1"}, "currency": "eur", "amount": 100}, 5)
    other, _ = check_instruction({"amount": 101, "currency": "eur", "metadata": {"a": 1}}, 0)
    assert one is not None and same is not None and other is not None
    assert one.reference == same.reference != other.reference and one.reference.startswith("h-")
    assert one.create_params({"k": "v"}) == {"amount": 100, "currency": "eur", "metadata": {"a": "1", "k": "v"}}


def test_single_payout_params_name_only_the_field() -> None:
    with pytest.raises(StripeInputError, match=r"^field 'method': 'fast' is not one of standard, instant"):
        instruction_from_params(amount=100, currency="eur", method="fast")
    with pytest.raises(StripeBatchInputError, match=r"field 'amount'") as caught:
        instruction_from_params(amount="100", currency="eur", destination="acct_1")
    assert len(caught.value.errors) == 2


# -- sources -----------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [1, 3, 7, 64])
def test_json_array_is_streamed_without_splitting_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(sources, "_READ_CHUNK", chunk)
    items = [{"amount": 1250 + n * 100_001, "currency": "eur", "reference": f"r{n}"} for n in range(20)]
    path = tmp_path / "payouts.json"
    path.write_text(" [\n" + ",\n ".join(json.dumps(i) for i in items) + "\n] \n")
    assert list(iter_source(str(path))) == items
    (tmp_path / "empty.json").write_text("[ ]")
    assert list(iter_source(str(tmp_path / "empty.json"))) == []
    (tmp_path / "bad.json").write_text('[{"amount": 1},,]')
    with pytest.raises(SourceError, match="not a valid JSON array"):
        list(iter_source(str(tmp_path / "bad.json")))


def test_sources_accept_lists_files_and_callables_and_explain_the_rest(tmp_path: Path) -> None:
    item = {"amount": 100, "currency": "eur"}
    assert list(iter_source([item])) == [item]
    assert list(iter_source(lambda context, jinja_env: (i for i in [item, item]))) == [item, item]
    (tmp_path / "p.ndjson").write_text(json.dumps(item) + "\n\n" + json.dumps(item) + "\n")
    assert list(iter_source(tmp_path / "p.ndjson")) == [item, item]
    assert list(iter_source(f"file://{tmp_path / 'p.ndjson'}")) == [item, item]  # ObjectStoragePath
    with pytest.raises(SourceError, match="render_template_as_native_obj"):
        list(iter_source("[{'amount': 100}]"))
    with pytest.raises(SourceError, match="single dict"):
        list(iter_source(item))
    with pytest.raises(SourceError, match="does not exist"):
        list(iter_source(str(tmp_path / "missing.jsonl")))


def test_validated_batch_is_spooled_and_replayable() -> None:
    raw = (dict(amount=100 + n, currency="eur", reference=f"r{n}") for n in range(5))  # a one-shot generator
    with validate_batch(raw) as batch:
        assert batch.count == 5 and batch.totals == {"eur": 510} and batch.describe_totals() == "5.10 EUR"
        assert [i.reference for i in batch] == [i.reference for i in batch] == [f"r{n}" for n in range(5)]
        spool = batch.path
    assert not spool.exists()


def test_every_invalid_item_is_counted_and_kept_up_to_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "MAX_ERRORS_KEPT", 3)
    seen: list[StripeInputError] = []
    with pytest.raises(StripeBatchInputError) as caught:
        validate_batch([{"amount": -1, "currency": "eur"}] * 10, on_error=seen.append)
    assert str(caught.value).startswith("10 of 10 payout instruction(s)")
    assert caught.value.total_errors == 10 and len(seen) == 10
    assert len(caught.value.errors) == 3 and "and 7 more problem(s)" in str(caught.value)


# -- progress ----------------------------------------------------------------------------------


class _Store:
    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.writes: list[str] = []

    def get(self, key: str, default: Any = None) -> Any:
        return json.loads(json.dumps(self.data[key])) if key in self.data else default

    def set(self, key: str, value: Any) -> None:
        self.data[key] = json.loads(json.dumps(value))
        self.writes.append(key)


def test_progress_writes_a_new_generation_before_it_is_used_and_resumes() -> None:
    store = _Store()
    progress = BatchLedger(store, flush_interval=3600)
    progress.load()
    assert store.writes == ["stripe_payout_batch"]
    progress.record("a", 0, "ok", "po_1")
    progress.record("b", 0, "refused")
    assert len(store.writes) == 1, "outcomes are batched"
    progress.record("b", 1, "sent")
    assert len(store.writes) == 2, "a new generation is written at once (write-ahead)"
    progress.flush(force=True)

    resumed = BatchLedger(store)
    resumed.load()
    assert resumed.resumed and resumed.created_count() == 1
    assert resumed.get("a") == progress.get("a") and resumed.get("a").object_id == "po_1"  # type: ignore[union-attr]
    assert resumed.get("b").generation == 1 and resumed.get("b").code == "sent"  # type: ignore[union-attr]
    assert resumed.get("c") is None

    forgetful = BatchLedger(None)
    forgetful.load()
    forgetful.record("a", 2, "sent")
    assert not forgetful.remembered and forgetful.get("a") is None


def test_a_flush_writes_what_changed_whatever_the_batch_size() -> None:
    for size in (100, 10_000):
        store = _Store()
        ledger = BatchLedger(store, flush_interval=3600)
        ledger.load()
        for n in range(size):
            ledger.record(f"ref-{n}", 0, "ok", f"po_{n}", made_by=1)
        ledger.flush(force=True)
        store.writes.clear()
        for n in range(0, size, size // 10):  # ten outcomes change, spread over the whole batch
            ledger.record(f"ref-{n}", 0, "ok", f"po_again_{n}", made_by=1)
        ledger.flush(force=True)
        written = [store.data[key] for key in store.writes]
        assert len(written) == 1 and len(written[0]) == 10, f"{size} items: {len(written)} values written"
        resumed = BatchLedger(store)
        resumed.load()
        assert (
            resumed.created_count() == size and resumed.get(f"ref-{size // 10}").object_id == f"po_again_{size // 10}"
        )  # type: ignore[union-attr]


def test_ledger_keeps_when_each_try_started_and_which_try_created_each_payout() -> None:
    store = _Store()
    first = BatchLedger(store, flush_interval=3600)
    first.load(1)
    assert list(store.data["stripe_payout_batch"]["tries"]) == ["1"], "written before the try sends anything"
    first.record("a", 0, "ok", "po_1", made_by=1)
    first.record("b", 0, "ok", "po_2", made_by=None)  # replayed: its try is learnt later
    first.flush(force=True)
    assert store.data["stripe_payout_batch/0"] == {"a": "po_1", "b": [0, "ok", "po_2"]}, "try 1's stays compact"

    second = BatchLedger(store, flush_interval=3600)
    second.load(2)
    assert sorted(store.data["stripe_payout_batch"]["tries"]) == ["1", "2"]
    assert second.tries[1] == first.tries[1], "an earlier try's start is kept as written"
    second.record("c", 1, "ok", "po_3", made_by=2)
    second.flush(force=True)
    assert store.data["stripe_payout_batch/1"] == {"c": [1, "ok", "po_3", 2]}, "a flush appends what changed"
    third = BatchLedger(store)
    third.load(3)
    assert [(third.get(r) or ItemState(0, "sent")).made_by for r in "abc"] == [1, None, 2]

    third.tries = {
        1: datetime(2026, 1, 1, 0, 0, 30, tzinfo=timezone.utc),
        2: datetime(2026, 1, 1, 0, 10, 0, 500, tzinfo=timezone.utc),
    }
    at = lambda minute, second=0: int(datetime(2026, 1, 1, 0, minute, second, tzinfo=timezone.utc).timestamp())  # noqa: E731
    assert third.try_that_created(at(5), 3) == 1
    assert third.try_that_created(at(0, 29), 3) == 1, "Stripe's whole seconds: a second of slack"
    assert third.try_that_created(at(10), 3) == 2 and third.try_that_created(at(10), 2) == 1
    assert third.try_that_created(at(0), 3) is None, "older than the run's first try: not this run's tries"

    without_store = BatchLedger(None)
    without_store.load(2)
    assert without_store.try_that_created(at(5), 2) == 1, "try 2 can only follow try 1"
    assert without_store.try_that_created(at(5), 3) is None, "a third try cannot tell"


def test_explicit_references_are_told_from_content_hashes() -> None:
    named, _ = check_instruction({"reference": "inv-1", "amount": 100, "currency": "eur"}, 0)
    unnamed, _ = check_instruction({"amount": 100, "currency": "eur"}, 1)
    assert named is not None and unnamed is not None
    assert named.has_explicit_reference and not unnamed.has_explicit_reference
    with validate_batch(
        [{"reference": "inv-1", "amount": 100, "currency": "eur"}, {"amount": 5, "currency": "eur"}]
    ) as b:
        assert b.explicit_references == 1 and [i.has_explicit_reference for i in b] == [True, False]


def test_run_totals_count_what_the_run_did_by_try() -> None:
    sink = ResultSink(total=6, try_number=3)
    base = {"amount": 100, "currency": "eur"}
    sink.add(ItemResult(index=0, reference="a", outcome="created", created_by_try=3, **base))
    sink.add(ItemResult(index=1, reference="b", outcome="existing", created_by_try=1, **base))
    sink.add(ItemResult(index=2, reference="c", outcome="existing", created_by_try=1, **base))
    sink.add(ItemResult(index=3, reference="d", outcome="existing", created_by_try=None, **base))
    sink.add(ItemResult(index=4, reference="e", outcome="already_paid_by_run", paid_by_run="manual__x", **base))
    sink.add(ItemResult(index=5, reference="f", outcome="failed", error={"type": "api_error"}, **base))
    assert sink.summary()["this_run"] == {
        "try_number": 3,
        "paid": 4,
        "created_by_try": {"1": 2, "3": 1, "earlier": 1},
        "found": 3,
        "already_paid_by_run": {"manual__x": 1},
        "failed": 1,
        "not_attempted": 0,
    }
    line = sink.describe_run()
    assert "2 by try 1, 1 by try 3, 1 by an earlier try" in line and "1 by run manual__x" in line
