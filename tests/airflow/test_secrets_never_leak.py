"""No secret of a ``stripe`` connection leaves the connection: every example DAG, run for real, then searched.

``stripe_default`` holds recognisable canaries -- an API key, two webhook signing secrets (a
rotation), an OAuth refresh token and the password of the Redis server holding its shared rate
limit (a real ``redis-server`` requiring it), each containing :data:`CANARY` -- on a Stripe
Connect (``oauth2``) connection, so the refresh token is a real part of it. One more run of the
charge DAG gives the connection a ``base_url`` with a password in its userinfo: refused before
any request, and the password must appear nowhere either. A module-scoped fixture
starts a real ``airflow api-server`` (execution API and the provider's webhook endpoint) and
a real ``airflow triggerer`` on the session's AIRFLOW_HOME, then runs every example DAG found in
``dags_examples/`` once with ``dag.test(use_executor=True)`` (:data:`RUN_BY_DAG` says how, by
DAG id, where a plain run is not enough; :func:`test_every_example_dag_is_run` fails if one is
left out): the LocalExecutor runs every task in its own supervised process, which writes the
task log files, exactly as in production. Against the session's real localstripe behind one
front with Stripe's reporting and balance-transaction routes (``run_ledger_front``), through
which everything else (the simulated bank too) goes: that front alone knows which connected
account owns each payout:

* ``stripe_charge_capture_refund``: to success; then configured to fail (localstripe declines
  the card: a real ``card_declined`` 402), once more in this process too, so the exception
  objects themselves can be searched;
* ``stripe_payout_batch``: the batch, then the deferrable sensor waits in the triggerer
  (trigger kwargs stored encrypted) until a simulated bank, which starts only once the
  sensor has deferred, settles the payouts;
* ``stripe_payout_batch_approval``: approved through the api-server's human-in-the-loop
  endpoint, as a person does in the UI, then paid;
* ``stripe_warehouse``: paid (the bank settles through the same front), reconciled, exported;
* ``stripe_report_run``: the report run waits in the triggerer until the front has computed it;
* ``stripe_payouts_mapped``, ``stripe_daily_export`` and ``stripe_export_accounts`` (export
  files written);
* ``stripe_payout_events_polled``: unpaused, so Airflow stores its watcher's trigger row; the
  example's own :class:`StripeEventTrigger` (made to poll every second) fires the
  ``payout.paid`` / ``payout.failed`` events of two new payouts, submitted with
  ``Trigger.submit_event`` as the triggerer submits them; the DAG run consumes them;
* ``stripe_payout_events_webhook``: localstripe delivers the same events, signed with the
  connection's current secret, to the API server's webhook endpoint (plus a forged delivery,
  refused); the DAG run consumes the asset events the endpoint recorded.

The searches (case-insensitive, plus the base64 form of each whole secret, as in an HTTP
Basic header): stdout/stderr and logging records of this process (the executor's workers
are forked from it), the API server's and the triggerer's output, every file under
``$AIRFLOW_HOME/logs``, every other file under ``$AIRFLOW_HOME`` (the SQLite file with its
free pages) and the export files, a text dump of every table of the metadata DB (blobs
decompressed, Fernet-encrypted values such as trigger kwargs decrypted), and the failing
run's exceptions (message, traceback, cause chain, attributes).

Also, without DAG runs: the search itself finds each secret however it is written, and the
Test button's answer (valid or malformed connection) and ``repr`` of the parsed connection
hold no secret. About 150 s in all on this 2-core machine under load, most of it the
fixture.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import re
import secrets
import sqlite3
import sys
import threading
import time
import traceback
import warnings
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_stripe.events.signature import SIGNATURE_HEADER, sign_payload
from airflow_provider_stripe.testing.settlement import SettlementSimulator
from tests import airflow_env
from tests.airflow.api_server import ApiServer, run_api_server
from tests.airflow.dag_helpers import (
    dag_tests_bounded,
    drop_finished_triggers,
    example_dag,
    run_triggerer,
    task_states,
    xcoms,
)
from tests.airflow.subprocess_env import installed_env
from tests.airflow.test_events_triggerer import payout
from tests.airflow.test_example_payout_batch_dag import SAMPLE
from tests.airflow.test_webhook_endpoint import serialize_example_dag
from tests.integration.payout_helpers import eur_items, write_jsonl
from tests.integration.test_rate_limit import redis_server
from tests.servers.localstripe_server import LocalStripe, flush_localstripe, register_webhook
from tests.servers.stripe_reporting import LedgerFront, run_ledger_front

pytestmark = [pytest.mark.slow, pytest.mark.timeout(720)]
RUNS_TIMEOUT = 600.0
"""Seconds the module's DAG runs may take in all (about 120 s on an idle 2-core machine) before they are stopped."""

CANARY = "LEAKCANARY"
"""Part of every secret below; found anywhere, it is a leak (searched case-insensitively)."""
API_KEY = f"sk_test_{CANARY}ApiKey4f1c9b7e2d"
WEBHOOK_SECRETS = (f"whsec_{CANARY}Rotated8a7b6c5d", f"whsec_{CANARY}Current1e2f3a4b")
REFRESH_TOKEN = f"rt_{CANARY}Refresh9d8c7b6a5f"
REDIS_PASSWORD = f"{CANARY}Redis3c2b1a0f"
"""The password of the Redis server that holds the shared rate limit (``rate_limit_storage_uri``)."""
BASE_URL_PASSWORD = f"{CANARY}UrlPass7d6e5f4a"
"""A password in a ``base_url``'s userinfo: refused, and never quoted."""
SECRETS = {
    "API key": API_KEY,
    "old webhook secret": WEBHOOK_SECRETS[0],
    "webhook secret": WEBHOOK_SECRETS[1],
    "OAuth refresh token": REFRESH_TOKEN,
    "Redis password": REDIS_PASSWORD,
    "base_url password": BASE_URL_PASSWORD,
}
CONN_ID = "stripe_default"
CONN_ENV = f"AIRFLOW_CONN_{CONN_ID.upper()}"
POLLED_DAG, WEBHOOK_DAG = "stripe_payout_events_polled", "stripe_payout_events_webhook"
DECLINED_SOURCE = "pm_card_chargeCustomerFail"
"""localstripe declines a charge on this payment method (402, ``card_declined``)."""
WEBHOOK_ID = "leak_test"


LEAK_TEST_ACCOUNT = "acct_leaktest"
"""The connected account ``stripe_default`` acts for: its payouts are listed (and settled) with it."""


def connection_json(base_url: str, storage_uri: str = "memory://") -> str:
    """``stripe_default`` as an ``AIRFLOW_CONN_`` value: Stripe Connect, every secret field set."""
    extra = {
        "rate_limit_storage_uri": storage_uri,
        "api_key": API_KEY,
        "webhook_secret": ",".join(WEBHOOK_SECRETS),
        "base_url": base_url,
        "mode": "managed",
        "auth_type": "oauth2",
        "oauth_client_id": "ca_leaktestclient",
        "account_id": LEAK_TEST_ACCOUNT,
        "oauth_refresh_token": REFRESH_TOKEN,
    }
    return json.dumps({"conn_type": "stripe", "extra": extra})


def with_userinfo(base_url: str) -> str:
    """``http://127.0.0.1:PORT`` with a user and :data:`BASE_URL_PASSWORD` in it."""
    scheme, rest = base_url.split("://", 1)
    return f"{scheme}://leak:{BASE_URL_PASSWORD}@{rest}"


# -- finding canaries ---------------------------------------------------------------------------

_CANARY_RE = re.compile(CANARY, re.IGNORECASE)
_BASE64_NEEDLES = {
    # The base64 text of anything that starts with the secret starts with these characters.
    name: base64.b64encode(secret.encode()).decode()[: len(secret) // 3 * 4]
    for name, secret in SECRETS.items()
}


def find_leaks(where: str, text: str) -> list[str]:
    """One line per canary found in ``text``: where, and the text around it."""
    found = [f"{where}: ...{text[max(0, m.start() - 160) : m.end() + 40]!r}..." for m in _CANARY_RE.finditer(text)]
    found += [f"{where}: the {name}, base64-encoded" for name, needle in _BASE64_NEEDLES.items() if needle in text]
    return found


def assert_no_leaks(findings: list[str]) -> None:
    assert not findings, f"{len(findings)} secret leak(s):\n" + "\n".join(findings[:40])


def read_text(path: Path) -> str:
    """A file's bytes as text, byte for byte (latin-1), so a binary file is searched too."""
    return path.read_bytes().decode("latin-1")


# -- capturing what this process prints and logs ------------------------------------------------


class RecordingHandler(logging.Handler):
    """Every logging record with its traceback, before any masking filter (``caplog`` for a module fixture)."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@contextlib.contextmanager
def captured(request: pytest.FixtureRequest) -> Iterator[tuple[list[str], RecordingHandler]]:
    """Collect stdout/stderr (pytest's fd-level capture, read back and re-emitted) and logging records.

    A module-scoped fixture cannot use ``capfd``/``caplog``: this reads pytest's global
    capture instead, which also holds the output of child processes forked from this one.
    With ``-s`` there is nothing to read: ``output`` stays ``[]`` (the test says so).
    """
    capman = request.config.pluginmanager.getplugin("capturemanager")
    capturing = capman is not None and capman.is_globally_capturing()
    if capturing:
        capman.read_global_capture()  # drop what earlier setup printed
    handler = RecordingHandler()
    root = logging.getLogger()
    root.addHandler(handler)
    output: list[str] = []
    try:
        yield output, handler
    finally:
        if handler in root.handlers:
            root.removeHandler(handler)
        else:
            handler.lines.append("!! the recording handler was removed from the root logger during the runs")
        if capturing:
            out, err = capman.read_global_capture()
            output += [out, err]
            sys.stdout.write(out)  # back into pytest's capture: shown if a test fails
            sys.stderr.write(err)


# -- Airflow's services, for real --------------------------------------------------------------


@contextlib.contextmanager
def production_fernet_key() -> Iterator[None]:
    """Encrypt in this process with the Fernet key of ``$AIRFLOW_HOME/airflow.cfg``, as Airflow's services do.

    This process read its configuration before ``airflow db migrate`` wrote that file, so it
    has no key and would store trigger kwargs (e.g. an asset watcher's) unencrypted, unlike
    production; the services it starts read the file and encrypt.
    """
    import configparser

    from airflow.models import crypto

    def reset_fernet() -> None:
        # Airflow 3.2+ caches get_fernet() with functools.cache; 3.1 in the module global _fernet.
        if hasattr(crypto.get_fernet, "cache_clear"):
            crypto.get_fernet.cache_clear()
        else:
            crypto._fernet = None  # type: ignore[attr-defined]

    cfg = configparser.RawConfigParser()
    cfg.read(airflow_env.configure() / "airflow.cfg")
    key = cfg.get("core", "fernet_key", fallback="")
    assert key, "airflow db migrate wrote no Fernet key: nothing would be stored encrypted"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW__CORE__FERNET_KEY", key)
        reset_fernet()
        try:
            yield
        finally:
            reset_fernet()  # the next call reads the restored environment


@contextlib.contextmanager
def airflow_services(
    monkeypatch: pytest.MonkeyPatch, env: Mapping[str, str], workdir: Path, runs: Runs
) -> Iterator[ApiServer]:
    """An API server and a triggerer sharing ``env``; ``dag.test(use_executor=True)`` in this process uses them.

    Task processes authenticate to the execution API with tokens this process signs, so
    both sides get the same JWT secret. The services' output is kept in ``runs``.
    """
    jwt_secret = secrets.token_urlsafe(64)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", jwt_secret)
    runs.triggerer_log = workdir / "triggerer.log"
    drop_finished_triggers()  # earlier in-process dag.test() runs' triggers would run again
    with (
        run_triggerer(installed_env(**env, PYTHONUNBUFFERED="1"), runs.triggerer_log) as triggerer,
        dag_tests_bounded(triggerer, RUNS_TIMEOUT, note=runs.note) as runs.stopped_because,
        run_api_server(env={**env, "AIRFLOW__API_AUTH__JWT_SECRET": jwt_secret}) as api,
    ):
        runs.mark("api-server up")
        monkeypatch.setenv("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", f"{api.url}/execution/")
        try:
            yield api
        finally:
            runs.api_server_log = api.log_tail(50_000_000)
    runs.mark("services stopped")


# -- running the example DAGs -------------------------------------------------------------------


@dataclass
class Runs:
    """What the module's DAG runs left behind, for the tests to search."""

    states: dict[str, str] = field(default_factory=dict)
    task_states: dict[str, dict[tuple[str, int], str]] = field(default_factory=dict)
    run_ids: dict[str, str] = field(default_factory=dict)
    failures: list[BaseException] = field(default_factory=list)
    deferred: bool = False
    fired: list[dict[str, Any]] = field(default_factory=list)
    event_payouts: set[str] = field(default_factory=set)
    forged_status: int | None = None
    webhook_asset_events: list[int] = field(default_factory=list)
    reconciled: dict[str, list[list[dict[str, Any]]]] = field(default_factory=dict)  # XCom per map index
    output: list[str] = field(default_factory=list)
    log_lines: list[str] = field(default_factory=list)
    api_server_log: str = ""
    triggerer_log: Path = Path()
    export_dir: Path = Path()
    timeline: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    stopped_because: list[str] = field(default_factory=list)
    """Why :func:`dag_tests_bounded` stopped the DAG runs (a dead triggerer, the deadline), if it did."""
    dag_ids: set[str] = field(default_factory=set)
    """The DAGs that were run."""
    keep: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    """What stays on until the metadata DB has been searched (the watched events DAG, the Fernet key)."""

    def mark(self, what: str) -> None:
        """Note when a step ended (seconds since the fixture started): shown when a check fails."""
        self.timeline.append(f"{time.monotonic() - self.started:6.1f}s {what}")

    def note(self, line: str) -> None:
        """Something the runs worked around: in the timeline and in pytest's warnings summary."""
        self.mark(line)
        warnings.warn(line, stacklevel=2)

    def record(self, label: str, dag_run: Any) -> Any:
        self.mark(f"run {label!r}: {dag_run.state}")
        if self.stopped_because:
            timeline = "\n".join(self.timeline)
            raise AssertionError(f"DAG runs stopped at {label!r}: {self.stopped_because[0]}\n{timeline}")
        self.states[label] = str(dag_run.state)
        self.dag_ids.add(dag_run.dag_id)
        self.task_states[label] = task_states(dag_run)
        self.run_ids[label] = dag_run.run_id
        return dag_run


def _record_failures(monkeypatch: pytest.MonkeyPatch, cls: type[Any], runs: Runs) -> None:
    """Keep every exception ``cls.execute`` raises in this process (the exception objects themselves)."""
    original = cls.execute

    def execute(self: Any, context: Any) -> Any:
        try:
            return original(self, context)
        except BaseException as exc:
            runs.failures.append(exc)
            raise

    monkeypatch.setattr(cls, "execute", execute)


def _metadata_db() -> sqlite3.Connection:
    """The session's metadata DB, read-only (plain sqlite3: usable from any thread)."""
    db = airflow_env.configure() / "airflow.db"
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)


def _deferred_runs(dag_id: str, task_id: str) -> set[str]:
    """Run ids in which this task is deferred right now."""
    with contextlib.closing(_metadata_db()) as conn:
        rows = conn.execute(
            "SELECT run_id FROM task_instance WHERE dag_id = ? AND task_id = ? AND state = 'deferred'",
            (dag_id, task_id),
        ).fetchall()
    return {str(run_id) for (run_id,) in rows}


@contextlib.contextmanager
def bank_settling_after_deferral(base_url: str, runs: Runs) -> Iterator[None]:
    """Simulated bank that starts settling payouts once the batch's sensor is deferred (so it must defer)."""
    stop = threading.Event()
    sensor = ("stripe_payout_batch", "wait_for_payouts")
    before = _deferred_runs(*sensor)  # left behind by an earlier crashed test, if any

    def bank() -> None:
        while not stop.wait(0.2):
            if _deferred_runs(*sensor) - before:
                runs.deferred = True
                break
        if runs.deferred:
            with SettlementSimulator(base_url, API_KEY, delay=0.0, accounts=[LEAK_TEST_ACCOUNT]):
                stop.wait(180)

    thread = threading.Thread(target=bank, daemon=True, name="leak-test-bank")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=15)


def _fire_events(trigger: Any, count: int, timeout: float) -> list[Any]:
    """Run a trigger in this process until it fired ``count`` events (or ``timeout`` seconds passed)."""
    events: list[Any] = []

    async def collect() -> None:
        gen = trigger.run()
        try:
            async for event in gen:
                events.append(event)
                if len(events) >= count:
                    return
        finally:
            await gen.aclose()

    async def bounded() -> None:
        await asyncio.wait_for(collect(), timeout)

    asyncio.run(bounded())
    return events


def _asset_event_ids(uris: list[str], stripe_event_ids: set[str]) -> list[int]:
    """Ids of the asset events on these assets whose payload is one of these Stripe events."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(AssetEvent.id, AssetEvent.extra)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetModel.uri.in_(uris))
        ).all()
    return [row_id for row_id, extra in rows if (extra.get("payload") or {}).get("event_id") in stripe_event_ids]


@contextlib.contextmanager
def watched(dag_id: str) -> Iterator[None]:
    """Unpause ``dag_id`` and store its assets' watchers with their trigger rows, as for a live DAG.

    Airflow stores an asset's watcher (and the trigger row the triggerer runs, its kwargs
    encrypted) only while a DAG scheduled on the asset is active and unpaused. Paused
    again, which drops the watcher, on exit.
    """
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    def pause(paused: bool) -> None:
        with create_session() as session:
            dag_model = session.get(DagModel, dag_id)
            assert dag_model is not None, f"{dag_id} is not in the metadata DB"
            dag_model.is_paused = paused
        serialize_example_dag()

    serialize_example_dag()  # the DAGs and their assets, as the dag-processor stores them
    pause(False)
    try:
        yield
    finally:
        pause(True)


def _submit_like_the_triggerer(asset_uri: str, events: list[Any]) -> None:
    """``Trigger.submit_event`` on the watcher's stored trigger: asset events, as the triggerer records them."""
    from airflow.models.asset import AssetModel
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from airflow_provider_stripe.compat import AIRFLOW_VERSION

    with create_session() as session:
        asset = session.scalars(select(AssetModel).where(AssetModel.uri == asset_uri)).one()
        if AIRFLOW_VERSION >= (3, 2):  # the watcher rows link asset and trigger
            (trigger_id,) = [watcher.trigger_id for watcher in asset.watchers]
        else:
            (trigger_id,) = [trigger.id for trigger in asset.triggers]
        for event in events:
            Trigger.submit_event(trigger_id, event, session=session)


@contextlib.contextmanager
def consuming(asset_event_ids: list[int]) -> Iterator[None]:
    """Make ``dag.test()`` create an asset-triggered run: one that consumed these asset events."""
    from airflow.models import dagrun
    from airflow.models.asset import AssetEvent

    original = dagrun.get_or_create_dagrun

    def get_or_create_dagrun(**kwargs: Any) -> Any:
        dag_run = original(**kwargs)
        session = kwargs["session"]
        dag_run.consumed_asset_events.extend(session.get(AssetEvent, i) for i in asset_event_ids)
        session.commit()
        return dag_run

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dagrun, "get_or_create_dagrun", get_or_create_dagrun)
        yield


def _wait_for(what: str, probe: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := probe():
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _run_events_dags(base_url: str, api: ApiServer, runs: Runs) -> None:
    """Both payout-events DAGs, each on asset events that really came from Stripe's side (needs :func:`watched`)."""
    from airflow_provider_stripe.compat import dagbag_module

    DagBag = dagbag_module().DagBag

    from airflow_provider_stripe.triggers.events import StripeEventTrigger

    bag = DagBag(dag_folder=str(airflow_env.DAGS_FOLDER / "stripe_payout_events.py"))
    polled_dag, webhook_dag = bag.get_dag(POLLED_DAG), bag.get_dag(WEBHOOK_DAG)
    webhook_uris = [asset.uri for asset in webhook_dag.timetable.asset_condition.objects]
    endpoint = f"{api.url}/stripe/webhooks/{CONN_ID}"
    register_webhook(base_url, WEBHOOK_ID, endpoint, WEBHOOK_SECRETS[1], ["payout.paid", "payout.failed"])
    try:
        started = int(time.time()) - 1
        runs.event_payouts = {payout(base_url, "paid"), payout(base_url, "failed")}

        # Pull: the example's own watcher trigger (its connection and types), polling every second.
        (polled_asset,) = polled_dag.timetable.asset_condition.objects
        (watcher,) = polled_asset.watchers
        _, kwargs = watcher.trigger.serialize()
        trigger = StripeEventTrigger(**{**kwargs, "start_from": started, "poll_interval": 1.0, "cursor": None})
        fired = _fire_events(trigger, 2, timeout=60)
        runs.fired = [event.payload for event in fired]
        runs.mark("events fired by the trigger")
        _submit_like_the_triggerer(polled_asset.uri, fired)
        with consuming(_asset_event_ids([polled_asset.uri], {e["event_id"] for e in runs.fired})):
            dag_run = runs.record("events polled", polled_dag.test(use_executor=True))
        runs.reconciled["events polled"] = xcoms(dag_run, "reconcile_payouts")

        # Push: localstripe delivered the same events, signed, to the API server; a forged one is refused.
        event_ids = {e["event_id"] for e in runs.fired}

        def recorded() -> list[int] | None:
            ids = _asset_event_ids(webhook_uris, event_ids)
            return ids if len(ids) == len(event_ids) else None

        runs.webhook_asset_events = _wait_for("the webhook endpoint to record both events", recorded, timeout=60)
        runs.mark("events recorded by the webhook endpoint")
        forged = json.dumps({"id": "evt_forged", "type": "payout.paid", "data": {"object": {}}}).encode()
        runs.forged_status = requests.post(
            endpoint,
            data=forged,
            headers={SIGNATURE_HEADER: sign_payload(forged, "whsec_forged0000"), "Content-Type": "application/json"},
            timeout=15,
        ).status_code
        with consuming(runs.webhook_asset_events):
            dag_run = runs.record("events webhook", webhook_dag.test(use_executor=True))
        runs.reconciled["events webhook"] = xcoms(dag_run, "reconcile_payouts")
    finally:
        # localstripe cannot forget a webhook: point it at an event type that never happens.
        register_webhook(base_url, WEBHOOK_ID, f"{api.url}/gone", "whsec_unused", ["leak_test.disabled"])


def example_dag_ids() -> list[str]:
    """Every DAG id in ``dags_examples/``, parsed as the DAG processor would (a new example is found here)."""
    from airflow_provider_stripe.compat import dagbag_module

    bag = dagbag_module().DagBag(dag_folder=str(airflow_env.DAGS_FOLDER))
    assert not bag.import_errors, bag.import_errors
    return sorted(bag.dag_ids)


@dataclass
class Stage:
    """What a DAG's runner needs: the runs so far, the canary connection's front and the services."""

    runs: Runs
    front: LedgerFront
    local_url: str
    """The session's local Stripe (its own front): localstripe's webhooks are registered there."""
    api: ApiServer
    workdir: Path
    redis_uri: str


def _run_charges(stage: Stage) -> None:
    """To success, declined (a real 402), refused for its base_url password, and declined in process."""
    from airflow_provider_stripe.operators.charges import StripeCreateChargeOperator

    runs, charges = stage.runs, example_dag("stripe_charge_capture_refund")
    runs.record("charges", charges.test(use_executor=True))
    declined = {"source": DECLINED_SOURCE}
    runs.record("charges declined", charges.test(use_executor=True, run_conf=declined))
    with pytest.MonkeyPatch.context() as patch:  # refused before any request, never quoted
        patch.setenv(CONN_ENV, connection_json(with_userinfo(stage.front.url), stage.redis_uri))
        runs.record("charges, base_url with a password, in process", charges.test())
    with pytest.MonkeyPatch.context() as patch:
        _record_failures(patch, StripeCreateChargeOperator, runs)
        runs.record("charges declined in process", charges.test(run_conf=declined))


def _run_payout_batch(stage: Stage) -> None:
    with bank_settling_after_deferral(stage.front.url, stage.runs):
        conf = {"instructions_file": str(SAMPLE), "poll_seconds": 0.5}
        stage.runs.record("payout batch", example_dag("stripe_payout_batch").test(use_executor=True, run_conf=conf))


def _run_approval(stage: Stage) -> None:
    """Approved by a person through the api-server's human-in-the-loop endpoint, then paid."""
    from tests.airflow.test_payout_batch_approval_dag import approver

    conf = {"instructions_file": write_jsonl(stage.workdir / "approval.jsonl", eur_items(2, "approval"))}
    with approver(stage.api, "Approve") as seen:
        dag_run = example_dag("stripe_payout_batch_approval").test(use_executor=True, run_conf=conf)
    stage.runs.record("payout batch approval", dag_run)
    assert "response" in seen, f"nobody was asked to approve: {seen}"


def _run_payouts_mapped(stage: Stage) -> None:
    conf = {
        "region_files": [write_jsonl(stage.workdir / "north.jsonl", eur_items(2, "north"))],
        "bonuses": [{"reference": "bonus-leak", "amount": 2500, "description": "Referral bonus"}],
    }
    stage.runs.record("payouts mapped", example_dag("stripe_payouts_mapped").test(use_executor=True, run_conf=conf))


def _today() -> datetime:
    return datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)


def _run_daily_export(stage: Stage) -> None:
    export = example_dag("stripe_daily_export").test(
        use_executor=True,
        logical_date=_today() + timedelta(days=1),
        run_conf={"export_dir": str(stage.runs.export_dir)},
    )
    stage.runs.record("daily export", export)


def _run_export_accounts(stage: Stage) -> None:
    now = datetime.now(timezone.utc)
    conf = {
        "accounts": [LEAK_TEST_ACCOUNT],
        "warehouse": str(stage.runs.export_dir / "accounts"),
        "since": (now - timedelta(hours=1)).isoformat(),
        "until": (now + timedelta(minutes=5)).isoformat(),
    }
    stage.runs.record("export accounts", example_dag("stripe_export_accounts").test(use_executor=True, run_conf=conf))


def _run_report(stage: Stage) -> None:
    """Stripe (the ledger front) computes the report in the triggerer's polls; its file lands in the exports."""
    now = datetime.now(timezone.utc)
    stage.front.reporting.add_report_type(
        "balance_change_from_activity.itemized.3", data_available_start=0, data_available_end=int(now.timestamp())
    )
    conf = {
        "interval_start": (_today() - timedelta(days=1)).isoformat(),
        "interval_end": _today().isoformat(),
        "warehouse": str(stage.runs.export_dir / "reports"),
        "poll_seconds": 0.2,
    }
    stage.runs.record("report run", example_dag("stripe_report_run").test(use_executor=True, run_conf=conf))


def _run_warehouse(stage: Stage) -> None:
    """Paid by the bank (settled through the same front, which knows the payouts' account), reconciled, exported."""
    now = datetime.now(timezone.utc)
    conf = {
        "instructions_file": write_jsonl(stage.workdir / "warehouse.jsonl", eur_items(2, "warehouse")),
        "warehouse": str(stage.runs.export_dir / "warehouse"),
        "poll_seconds": 0.5,
        "changes_since": (now - timedelta(minutes=5)).isoformat(),
        "changes_until": (now + timedelta(minutes=5)).isoformat(),
    }
    with SettlementSimulator(stage.front.url, API_KEY, delay=1.0, accounts=[LEAK_TEST_ACCOUNT]):
        dag_run = example_dag("stripe_warehouse").test(use_executor=True, logical_date=now, run_conf=conf)
    stage.runs.record("warehouse", dag_run)


def _run_events(stage: Stage) -> None:
    """Both payout-events DAGs (one runner); the polled one stays watched until the DB has been searched."""
    stage.runs.keep.enter_context(watched(POLLED_DAG))
    stage.runs.mark("events DAG watched")
    _run_events_dags(stage.local_url, stage.api, stage.runs)


RUN_BY_DAG = {
    "stripe_charge_capture_refund": _run_charges,
    "stripe_daily_export": _run_daily_export,
    "stripe_export_accounts": _run_export_accounts,
    "stripe_payout_batch": _run_payout_batch,
    "stripe_payout_batch_approval": _run_approval,
    "stripe_payouts_mapped": _run_payouts_mapped,
    "stripe_report_run": _run_report,
    "stripe_warehouse": _run_warehouse,
    POLLED_DAG: _run_events,
    WEBHOOK_DAG: _run_events,
}
"""How to run an example that needs more than a plain run (a conf, a bank, an approver), by DAG id."""
LAST = (POLLED_DAG, WEBHOOK_DAG)
"""Run after the others: the polled DAG stays unpaused (watched) until the end."""


def _run_plainly(dag_id: str) -> Any:
    def run(stage: Stage) -> None:
        stage.runs.record(dag_id, example_dag(dag_id).test(use_executor=True))

    return run


@pytest.fixture(scope="module")
def runs(
    request: pytest.FixtureRequest, local_stripe: LocalStripe, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Runs]:
    """Every example DAG of ``dags_examples/``, run with the canary connection (see :data:`RUN_BY_DAG`)."""
    result = Runs()
    servers = contextlib.ExitStack()  # until the module's tests are done (the triggerer may still poll)
    request.addfinalizer(servers.close)
    airflow_env.migrate()
    flush_localstripe(local_stripe.url)
    result.mark("metadata DB migrated")
    workdir = tmp_path_factory.mktemp("leak")
    result.export_dir = workdir / "exports"
    redis_uri = servers.enter_context(redis_server(password=REDIS_PASSWORD))
    assert REDIS_PASSWORD in redis_uri
    # One front for every request: it alone knows which connected account owns each payout.
    front = servers.enter_context(run_ledger_front(local_stripe.upstream_url))
    env = {CONN_ENV: connection_json(front.url, redis_uri)}
    with result.keep:  # the polled DAG stays watched until the DB has been searched
        result.keep.enter_context(production_fernet_key())
        with (
            pytest.MonkeyPatch.context() as monkeypatch,
            captured(request) as (output, handler),
            airflow_services(monkeypatch, env, workdir, result) as api,
        ):
            stage = Stage(result, front, local_stripe.url, api, workdir, redis_uri)
            done: set[Any] = set()
            for dag_id in sorted(example_dag_ids(), key=lambda d: (d in LAST, d)):
                runner = RUN_BY_DAG.get(dag_id) or _run_plainly(dag_id)
                if runner not in done:
                    done.add(runner)
                    runner(stage)
        result.output, result.log_lines = output, handler.lines
        yield result


def test_the_search_finds_each_secret_however_it_is_written() -> None:
    """The searches below would see a secret as sent (Bearer), as HTTP Basic, in JSON, or upper-cased."""
    for secret in SECRETS.values():
        basic = base64.b64encode(f"{secret}:".encode()).decode()
        for text in (f"Authorization: Bearer {secret}", f"Authorization: Basic {basic}", json.dumps({"k": secret})):
            assert find_leaks("probe", text), text
        assert find_leaks("probe", secret.upper())
    assert not find_leaks("probe", "sk_test_*** whsec_*** rt_***")


@pytest.mark.parametrize(
    "bad_extra",
    [
        pytest.param({"oauth_refresh_token": [f"{CANARY}NoPrefixToken"]}, id="refresh-token-as-list"),
        pytest.param({"api_key": {"key": f"{CANARY}InADict"}}, id="api-key-as-dict"),
    ],
)
def test_the_test_button_never_echoes_a_malformed_secret(
    bad_extra: dict[str, Any], localstripe_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A secret of the wrong type fails validation naming the field, without quoting the value.

    The answer goes to the UI's Test button and ``airflow connections test`` unmasked; a
    value not shaped like a Stripe secret escapes ``redact``. No DAG run needed.
    """
    from airflow_provider_stripe.hooks.stripe import StripeHook

    extra = {**json.loads(connection_json(localstripe_url))["extra"], **bad_extra}
    monkeypatch.setenv("AIRFLOW_CONN_STRIPE_LEAK_BAD", json.dumps({"conn_type": "stripe", "extra": extra}))
    ok, message = StripeHook("stripe_leak_bad").test_connection()
    (field_name,) = bad_extra
    assert not ok and f"field {field_name!r}" in message and "value not shown" in message, message
    assert_no_leaks(find_leaks("Test button answer", message))


@pytest.mark.parametrize(
    "storage_uri",
    [
        "memory://",
        pytest.param(f"redis://:{REDIS_PASSWORD}@127.0.0.1:1/0", id="redis-unreachable"),
        pytest.param(f"nosuch://:{REDIS_PASSWORD}@127.0.0.1:1/0", id="unknown-storage-scheme"),
    ],
)
def test_the_test_button_and_the_config_repr_hold_no_secret(
    localstripe_url: str, monkeypatch: pytest.MonkeyPatch, storage_uri: str
) -> None:
    from airflow_provider_stripe.hooks.ratelimit import RateLimitSpec
    from airflow_provider_stripe.hooks.stripe import StripeHook

    monkeypatch.setenv("AIRFLOW_CONN_STRIPE_LEAK_OK", connection_json(localstripe_url, storage_uri))
    hook = StripeHook("stripe_leak_ok")
    _, message = hook.test_connection()  # localstripe answers the ping or not: either way, no secret
    assert message
    cfg = hook.config
    spec = RateLimitSpec(cfg.rate_limit_per_minute, cfg.rate_limit_per_hour, cfg.rate_limit_storage_uri)
    assert_no_leaks(
        find_leaks("Test button answer", message)
        + find_leaks("repr(hook.config)", repr(cfg))
        + find_leaks("repr(RateLimitSpec)", repr(spec))
    )


def test_the_test_button_never_quotes_a_base_url_password(
    localstripe_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_stripe.hooks.stripe import StripeHook

    monkeypatch.setenv("AIRFLOW_CONN_STRIPE_LEAK_URL", connection_json(with_userinfo(localstripe_url)))
    ok, message = StripeHook("stripe_leak_url").test_connection()
    assert not ok and "field 'base_url'" in message and "userinfo" in message, message
    assert_no_leaks(find_leaks("Test button answer", message))


# -- the runs did what they should (so searching what they left behind means something) ---------

EXPECTED_STATES = {
    "charges": "success",
    "charges declined": "failed",
    "charges, base_url with a password, in process": "failed",
    "charges declined in process": "failed",
    "payout batch": "success",
    "payout batch approval": "success",
    "payouts mapped": "success",
    "daily export": "success",
    "export accounts": "success",
    "report run": "success",
    "warehouse": "success",
    "events polled": "success",
    "events webhook": "success",
}


def test_every_example_dag_is_run(runs: Runs) -> None:
    """Each DAG of ``dags_examples/`` ran: a new example is run and searched without editing this test."""
    missing = sorted(set(example_dag_ids()) - runs.dag_ids)
    assert not missing, f"example DAGs never run by the leak test: {missing}; give them a runner in RUN_BY_DAG"


def test_every_example_ran_and_the_declined_one_failed(runs: Runs) -> None:
    expected = {**EXPECTED_STATES, **{label: "success" for label in runs.states if label not in EXPECTED_STATES}}
    assert runs.states == expected, (runs.task_states, runs.timeline)
    for label in ("charges declined", "charges declined in process"):
        authorize = {state for (task, _), state in runs.task_states[label].items() if task == "authorize"}
        assert authorize == {"failed"}, runs.task_states[label]
    assert runs.failures and all("card_declined" in str(exc) for exc in runs.failures)
    assert runs.deferred, "the batch's sensor never deferred: the triggerer path was not exercised"
    assert sorted(e["type"] for e in runs.fired) == ["payout.failed", "payout.paid"]
    assert runs.forged_status == 400
    for label in ("events polled", "events webhook"):
        (reconciled,) = runs.reconciled[label]
        assert {r["payout_id"] for r in reconciled} == runs.event_payouts
        assert sorted((r["event_type"], r["status"], r["confirmed"]) for r in reconciled) == [
            ("payout.failed", "failed", True),
            ("payout.paid", "paid", True),
        ]
    assert list((runs.export_dir / "charges").glob("*.jsonl")) and list((runs.export_dir / "payouts").glob("*.jsonl"))
    for landed in ("accounts/*/*/customers.parquet", "reports/*/*.csv", "warehouse/*/payouts_changed.parquet"):
        assert list(runs.export_dir.glob(landed)), f"nothing landed as {landed}"


# -- where secrets could end up -----------------------------------------------------------------


def test_no_secret_in_what_this_process_printed_or_logged(runs: Runs) -> None:
    if not runs.output:
        pytest.skip("pytest's output capture is off (-s): nothing was captured to search")
    printed = "".join(runs.output)
    assert "[DAG TEST]" in printed and "card_declined" in printed  # the in-process run's task log is in it
    logged = "\n".join(runs.log_lines)
    assert "!! the recording handler was removed" not in logged
    assert_no_leaks(find_leaks("stdout/stderr", printed) + find_leaks("logging", logged))


def test_no_secret_in_the_services_output(runs: Runs) -> None:
    assert "stripe/webhooks" in runs.api_server_log  # the webhook deliveries reached it
    assert "Starting the triggerer" in read_text(runs.triggerer_log)
    assert_no_leaks(
        find_leaks("api-server output", runs.api_server_log)
        + find_leaks("triggerer output", read_text(runs.triggerer_log))
    )


def test_no_secret_in_task_log_files(runs: Runs) -> None:
    logs = airflow_env.configure() / "logs"
    files = [p for p in logs.rglob("*") if p.is_file()]
    for label, run_id in runs.run_ids.items():
        if "in process" not in label:  # dag.test without an executor writes no task log files
            assert any(f"run_id={run_id}" in str(p) for p in files), f"no task log files for {label}"
    declined = "".join(read_text(p) for p in files if f"run_id={runs.run_ids['charges declined']}" in str(p))
    assert "card_declined" in declined and "Task failed with exception" in declined
    batch = [p.name for p in files if f"run_id={runs.run_ids['payout batch']}" in str(p)]
    assert any(".trigger." in name for name in batch), f"no log of the sensor's trigger (triggerer): {batch}"
    assert_no_leaks([leak for path in files for leak in find_leaks(str(path.relative_to(logs)), read_text(path))])


def test_no_secret_in_any_file_under_airflow_home_or_the_exports(runs: Runs) -> None:
    """Raw bytes: the SQLite file (its free pages too), the config, anything else written there."""
    home = airflow_env.configure()
    files = [p for root in (home, runs.export_dir) for p in root.rglob("*") if p.is_file()]
    assert home / "airflow.db" in files
    assert_no_leaks([leak for path in files for leak in find_leaks(str(path), read_text(path))])


DECRYPTED = "decrypted:"


def _readable(value: Any, fernet: Any) -> Iterator[str]:
    """The text forms of one DB cell: as stored, decompressed, and decrypted (marked) if Fernet-encrypted."""
    if isinstance(value, bytes):
        with contextlib.suppress(zlib.error):
            yield zlib.decompress(value).decode("latin-1")
        yield value.decode("latin-1")
    elif isinstance(value, str):
        yield value
        if value.startswith("gAAAAA"):  # a Fernet token (version byte 0x80)
            yield DECRYPTED + fernet.decrypt(value.encode()).decode("utf-8", "replace")


def dump_metadata_db() -> dict[str, list[str]]:
    """Every table of the session's metadata DB as text, one string per row (needs :func:`production_fernet_key`)."""
    from airflow.models.crypto import get_fernet

    fernet = get_fernet()  # the key Airflow's services encrypt with; a token it cannot decrypt fails the test
    tables: dict[str, list[str]] = {}
    with contextlib.closing(_metadata_db()) as conn:
        names = [n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for name in names:
            cursor = conn.execute(f'SELECT * FROM "{name}"')
            columns = [d[0] for d in cursor.description]
            tables[name] = [
                " | ".join(
                    f"{col}={text}"
                    for col, value in zip(columns, row, strict=True)
                    for text in _readable(value, fernet)
                )
                for row in cursor
            ]
    return tables


def test_no_secret_in_the_metadata_db(runs: Runs) -> None:
    tables = dump_metadata_db()
    for table in ("xcom", "rendered_task_instance_fields", "task_instance", "dag_run", "log", "asset_event"):
        assert tables.get(table), f"nothing in {table}: the dump would prove nothing"
    # Trigger kwargs are stored Fernet-encrypted: decrypted, the watcher's trigger names its connection.
    decrypted = [row.split(DECRYPTED, 1)[1] for row in tables["trigger"] if DECRYPTED in row]
    assert any(f'"stripe_conn_id": "{CONN_ID}"' in row for row in decrypted), tables["trigger"]
    assert_no_leaks(
        [
            leak
            for name, rows in tables.items()
            for i, row in enumerate(rows)
            for leak in find_leaks(f"{name} row {i}", row)
        ]
    )


def _exception_texts(exc: BaseException) -> Iterator[tuple[str, str]]:
    """Message, repr, formatted traceback and attributes of an exception and of each one in its chain."""
    yield "traceback", "".join(traceback.format_exception(exc))
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        name = type(current).__name__
        yield f"{name} message", str(current)
        yield f"{name} repr", repr(current)
        yield f"{name} attributes", repr(vars(current))
        current = current.__cause__ or current.__context__


def test_no_secret_in_the_failing_runs_exceptions(runs: Runs) -> None:
    assert runs.failures
    assert_no_leaks(
        [leak for exc in runs.failures for where, text in _exception_texts(exc) for leak in find_leaks(where, text)]
    )
