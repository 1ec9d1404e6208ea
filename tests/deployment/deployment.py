"""A real Airflow deployment on 127.0.0.1, driven through the REST API v2 only.

:func:`run_deployment` starts, in this order: PostgreSQL and Redis (:mod:`.services`),
localstripe with counting proxies and a Stripe-faithful one (idempotency) in front of it,
``airflow db migrate``, then ``api-server``, ``scheduler`` (LocalExecutor, parallelism > 1), ``dag-processor`` and
``triggerer`` as separate processes sharing one environment (:meth:`DeploymentConfig.env`,
the one place every Airflow process gets its settings from: add ``AIRFLOW__...`` there).

With ``celery_workers=N`` the same deployment runs the CeleryExecutor instead: Redis (the one
that also holds shared rate limits) is the broker, a second database on the same Postgres is
Celery's result backend, and N ``airflow celery worker`` processes run the tasks, each with its
own Celery hostname and its own task-instance hostname (``[core] hostname_callable``, see
:data:`WORKER_HOST_DIR`), as if on N machines. All workers share this machine's filesystem:
that is the one thing standing in for storage a multi-machine deployment must share (instruction
and result files; the DAG bundles).

DAGs come from two bundles: ``dags_examples/`` (what users copy) and
``tests/deployment/dags/`` (DAGs only this tier needs: a slow batch to kill and clear, two
tasks sharing a rate limit, batches whose runs overlap). :class:`Deployment` wraps the REST calls the tests make.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from airflow_provider_stripe.testing.settlement import SettlementSimulator
from benchmarks.counting_proxy import CountingProxy, run_counting_proxy
from tests import airflow_env
from tests.airflow.api_server import free_port
from tests.airflow.subprocess_env import installed_env
from tests.deployment.services import run_airflow, run_postgres, run_redis, tail
from tests.servers.fault_proxy import FaultKind, FaultPlan, FaultProxy, run_fault_proxy
from tests.servers.localstripe_server import TEST_API_KEY, run_localstripe

TEST_DAGS = Path(__file__).resolve().parent / "dags"
WEBHOOK_SECRET = "whsec_deploymentTierSecret"
SLOW_LATENCY_MS = 100
"""Added by default to every request of the ``stripe_proxied`` connection (its proxy's plan can be
changed at run time: ``deployment.proxy.set_plan``): a batch long enough to interrupt."""
LIMIT_PER_MINUTE = 60
HOLD_POSTS = FaultPlan(rates={FaultKind.SLOW: 1.0}, slow_ms=100, methods=frozenset({"POST"}))
"""The ``stripe_faithful`` connection's proxy (Stripe's idempotency semantics) holds every POST 100 ms
while its key is in flight, so batches of concurrent runs meet each other's keys."""
"""The ``stripe_limited`` connection's client-side limit, shared by its tasks through Redis."""
READY_TIMEOUT_S = 180.0
TERMINAL = {"success", "failed"}
HELD_PREFIX = "deploy-held"
"""Payouts whose description starts so stay ``pending`` for ``HELD_SECONDS`` (others 0.5 s): long
enough for the payout sensor to find them unpaid and defer to the triggerer."""
HELD_SECONDS = 20.0


def settlement_delay(payout: Mapping[str, Any]) -> float:
    """How long the simulated bank keeps a payout of the deployment pending (see ``HELD_PREFIX``)."""
    return HELD_SECONDS if str(payout.get("description") or "").startswith(HELD_PREFIX) else 0.5


CELERY_WORKER_CONCURRENCY = 2
"""Task slots of each Celery worker."""
CELERY_RESULTS_DATABASE = "celery_results"
"""Celery's result backend: a second database on the deployment's Postgres."""
WORKER_HOST_DIR = Path(__file__).resolve().parent / "worker_host"
"""Put on the Celery workers' ``PYTHONPATH`` (and nothing else): ``deployment_worker_host.hostname``
gives each worker the hostname Airflow records on its task instances (one machine, N hosts)."""

EXTRA_AIRFLOW_ENV: dict[str, str] = {}
"""Settings every Airflow process of the tier gets on top of the defaults (one place to add them)."""


@dataclass
class DeploymentConfig:
    """Where everything listens and the settings shared by every Airflow process."""

    workdir: Path
    db_url: str
    redis_url: str
    stripe_url: str
    proxied_url: str
    limited_proxy_url: str
    faithful_url: str
    api_port: int = field(default_factory=free_port)
    username: str = "admin"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    executor: str = "LocalExecutor"
    """``LocalExecutor``, or ``CeleryExecutor`` (then :meth:`celery_env` applies)."""

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def connections(self) -> dict[str, str]:
        """``AIRFLOW_CONN_*``: Stripe direct, through a counting/fault proxy, through one with a shared limit,
        and through one with Stripe's idempotency semantics."""
        from airflow_provider_stripe.testing.connection import connection_env

        common = {"api_key": TEST_API_KEY, "webhook_secret": WEBHOOK_SECRET}
        return {
            **connection_env("stripe_default", base_url=self.stripe_url, **common),
            **connection_env("stripe_proxied", base_url=self.proxied_url, **common),
            **connection_env("stripe_faithful", base_url=self.faithful_url, **common),
            **connection_env(
                "stripe_limited",
                base_url=self.limited_proxy_url,
                rate_limit_per_minute=LIMIT_PER_MINUTE,
                rate_limit_storage_uri=self.redis_url,
                **common,
            ),
        }

    def env(self) -> dict[str, str]:
        """The environment of every Airflow process of the deployment."""
        home = self.workdir / "airflow-home"
        home.mkdir(exist_ok=True)
        passwords = self.workdir / "passwords.json"
        passwords.write_text(json.dumps({self.username: self.password}))
        passwords.chmod(0o600)
        bundles = [
            {
                "name": name,
                "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                "kwargs": {"path": str(path), "refresh_interval": 0},
            }
            for name, path in (("dags-folder", airflow_env.DAGS_FOLDER), ("deployment-tests", TEST_DAGS))
        ]
        settings = {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.db_url,
            "AIRFLOW__CORE__EXECUTOR": self.executor,
            "AIRFLOW__CORE__PARALLELISM": "6",
            "AIRFLOW__CORE__DAGS_FOLDER": str(airflow_env.DAGS_FOLDER),
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
            "AIRFLOW__API__BASE_URL": self.api_url,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API_AUTH__JWT_SECRET": self.jwt_secret,
            "AIRFLOW__API__SECRET_KEY": self.jwt_secret,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{self.username}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_SEC": "2",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "PYTHONUNBUFFERED": "1",
            **self.connections(),
            **(self.celery_env() if self.executor == "CeleryExecutor" else {}),
            **EXTRA_AIRFLOW_ENV,
        }
        return installed_env(**settings)

    def celery_env(self) -> dict[str, str]:
        """``[celery]`` settings: Redis as the broker, a Postgres database as the result backend.

        The same settings go to the scheduler (which sends tasks and reads their states) and to
        every worker, as on a real multi-machine deployment.
        """
        results_db = self.db_url.rsplit("/", 1)[0] + f"/{CELERY_RESULTS_DATABASE}"
        return {
            "AIRFLOW__CELERY__BROKER_URL": self.redis_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{results_db}",
        }


@dataclass
class Deployment:
    """A running deployment: REST API v2 helpers and the proxies in front of localstripe."""

    config: DeploymentConfig
    proxy: CountingProxy
    """In front of the ``stripe_proxied`` connection: counts requests, adds latency or faults (its plan)."""
    limited_proxy: CountingProxy
    """In front of the ``stripe_limited`` connection (60 requests a minute, shared through Redis)."""
    faithful: FaultProxy
    """In front of the ``stripe_faithful`` connection: Stripe's idempotency semantics (localstripe has
    none), every POST held a while (:data:`HOLD_POSTS`)."""
    logs: Path
    env: dict[str, str]
    """The environment of every Airflow process (to start one more, e.g. a second api-server)."""
    workers: tuple[str, ...] = ()
    """The Celery workers' hostnames (what task instances record as ``hostname``); empty with LocalExecutor."""
    _token: str | None = None

    @property
    def stripe_url(self) -> str:
        return self.config.stripe_url

    def token(self) -> str:
        """A JWT from the api-server's SimpleAuthManager (``POST /auth/token``), cached."""
        if self._token is None:
            resp = requests.post(
                f"{self.config.api_url}/auth/token",
                json={"username": self.config.username, "password": self.config.password},
                timeout=15,
            )
            resp.raise_for_status()
            self._token = str(resp.json()["access_token"])
        return self._token

    def api(self, method: str, path: str, *, expect: int | tuple[int, ...] = 200, **kwargs: Any) -> Any:
        """An authenticated REST API v2 call; its JSON (or None), failing on an unexpected status."""
        resp = requests.request(
            method,
            f"{self.config.api_url}/api/v2{path}",
            headers={"Authorization": f"Bearer {self.token()}"},
            timeout=30,
            **kwargs,
        )
        wanted = (expect,) if isinstance(expect, int) else expect
        assert resp.status_code in wanted, f"{method} {path}: {resp.status_code} {resp.text[:2000]}"
        return resp.json() if resp.content else None

    @contextlib.contextmanager
    def extra_api_server(self, workers: int) -> Iterator[str]:
        """One more api-server on the same database, with ``--workers N``; yield its URL; stopped on exit."""
        port = free_port()
        env = {**self.env, "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}"}
        args = ["api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
        log = self.logs / f"api-server-{port}-{workers}-workers.log"
        url = f"http://127.0.0.1:{port}"
        with run_airflow(args, env, log, Path(env["AIRFLOW_HOME"]), stop_timeout=30):
            self.wait_for(f"the api-server with {workers} workers", lambda: _healthy(url), READY_TIMEOUT_S, 0.5)
            yield url

    def log_tails(self) -> str:
        """The end of each component's log, for failure messages."""
        return "\n".join(f"--- {p.name}\n{tail(p, 2000)}" for p in sorted(self.logs.glob("*.log")))

    # -- DAGs and runs ----------------------------------------------------------------

    def wait_for(self, what: str, predicate: Callable[[], Any], timeout: float, interval: float = 1.0) -> Any:
        """Poll until ``predicate()`` is truthy (returned), or fail after ``timeout`` s naming ``what``."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{self.log_tails()}")
            time.sleep(interval)

    def wait_dags(self, dag_ids: set[str], timeout: float = 180) -> None:
        """Until every DAG is parsed and serialized (listed by the API)."""

        def listed() -> bool:
            found = {d["dag_id"] for d in self.api("GET", "/dags", params={"limit": 100})["dags"]}
            return dag_ids <= found

        self.wait_for(f"DAGs {sorted(dag_ids)} to be parsed", listed, timeout, interval=2)

    def unpause(self, dag_id: str) -> None:
        self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def trigger(self, dag_id: str, *, logical_date: str | None, conf: Mapping[str, Any] | None = None) -> str:
        """``POST /dags/{dag_id}/dagRuns``; ``logical_date=None`` sends ``"logical_date": null``. Returns the run id."""
        body: dict[str, Any] = {"logical_date": logical_date, "conf": dict(conf or {})}
        return str(self.api("POST", f"/dags/{dag_id}/dagRuns", json=body)["dag_run_id"])

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}"))

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 180, state: str = "success") -> dict[str, Any]:
        """Until the run finishes; assert it ended in ``state`` (task states in the message otherwise)."""
        run = self.wait_for(
            f"{dag_id} {run_id} to finish",
            lambda: (r := self.run(dag_id, run_id))["state"] in TERMINAL and r,
            timeout,
        )
        assert run["state"] == state, f"{dag_id} {run_id} ended {run['state']}: {self.task_states(dag_id, run_id)}"
        return dict(run)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return list(self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"])

    def task_states(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return {
            f"{t['task_id']}[{t['map_index']}]": (t["state"], t["try_number"])
            for t in self.task_instances(dag_id, run_id)
        }

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        return dict(self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"))

    def xcom(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> Any:
        entry = self.api(
            "GET",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value",
            params={"map_index": map_index, "deserialize": True},
        )
        return entry["value"]


@contextlib.contextmanager
def run_deployment(workdir: Path, *, celery_workers: int = 0) -> Iterator[Deployment]:
    """Start the whole deployment in ``workdir``; stop everything (process groups) on exit.

    ``celery_workers=0``: LocalExecutor. ``celery_workers=N``: CeleryExecutor with N workers
    (hostnames ``celery-worker-1`` ... ``-N``), started before the deployment is yielded and
    waited for until each has joined the broker.
    """
    logs = workdir / "logs"
    logs.mkdir()
    celery = celery_workers > 0
    with contextlib.ExitStack() as stack:
        results_db = (CELERY_RESULTS_DATABASE,) if celery else ()
        db_url = stack.enter_context(run_postgres(workdir, extra_databases=results_db))
        redis_url = stack.enter_context(run_redis(workdir))
        stripe_url = stack.enter_context(run_localstripe())
        bank = SettlementSimulator(stripe_url, TEST_API_KEY, delay=settlement_delay, interval=1.0)
        stack.enter_context(bank)
        slow = stack.enter_context(run_counting_proxy(stripe_url, latency_ms=SLOW_LATENCY_MS))
        limited = stack.enter_context(run_counting_proxy(stripe_url))
        faithful = stack.enter_context(run_fault_proxy(stripe_url, faults=HOLD_POSTS))
        config = DeploymentConfig(workdir, db_url, redis_url, stripe_url, slow.url, limited.url, faithful.url)
        if celery:
            config.executor = "CeleryExecutor"
        env = config.env()
        cwd = Path(env["AIRFLOW_HOME"])
        migrate = stack.enter_context(run_airflow(["db", "migrate"], env, logs / "migrate.log", cwd))
        migrate.wait(timeout=300)
        assert migrate.returncode == 0, f"airflow db migrate failed:\n{tail(logs / 'migrate.log')}"
        workers = tuple(f"celery-worker-{n}" for n in range(1, celery_workers + 1))
        deployment = Deployment(config, slow, limited, faithful, logs, env, workers)
        procs = []
        for args in (
            ["api-server", "--host", "127.0.0.1", "--port", str(config.api_port), "--workers", "1"],
            ["scheduler", "--skip-serve-logs"],
            ["dag-processor"],
            ["triggerer", "--skip-serve-logs", "--capacity", "20"],
        ):
            procs.append(stack.enter_context(run_airflow(args, env, logs / f"{args[0]}.log", cwd, stop_timeout=30)))
        for name in workers:
            procs.append(stack.enter_context(run_airflow(*_celery_worker(name, env, logs), cwd, stop_timeout=30)))
        try:
            deployment.wait_for("the api-server to answer", lambda: _healthy(config.api_url), READY_TIMEOUT_S, 0.5)
            for name in workers:
                log = logs / f"{name}.log"
                deployment.wait_for(
                    f"{name} to join the broker", functools.partial(_celery_ready, name, log), READY_TIMEOUT_S
                )
            yield deployment
        finally:  # all components stop at once; the exit stack then waits for each (and SIGKILLs stragglers)
            for proc in procs:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)


def _celery_worker(name: str, env: Mapping[str, str], logs: Path) -> tuple[list[str], dict[str, str], Path]:
    """Arguments, environment and log of ``airflow celery worker`` as host ``name``.

    ``--skip-serve-logs``: task logs are written to the shared ``AIRFLOW_HOME/logs``, where the
    api-server reads them (N log servers on one machine would also need N ports).
    """
    args = [
        "celery",
        "worker",
        "--celery-hostname",
        _celery_node(name),
        "--concurrency",
        str(CELERY_WORKER_CONCURRENCY),
        "--skip-serve-logs",
    ]
    worker_env = {
        **env,
        "PYTHONPATH": os.pathsep.join(p for p in (str(WORKER_HOST_DIR), env.get("PYTHONPATH", "")) if p),
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "deployment_worker_host.hostname",
        "DEPLOYMENT_WORKER_HOSTNAME": name,
    }
    return args, worker_env, logs / f"{name}.log"


def _celery_ready(name: str, log: Path) -> bool:
    """Celery logs ``<name>@<host> ready.`` once the worker consumes from the broker."""
    return f"{_celery_node(name)} ready." in tail(log, 100_000)


def _celery_node(name: str) -> str:
    """The Celery node name of worker ``name`` (``--celery-hostname``)."""
    return f"{name}@127.0.0.1"


def _healthy(url: str) -> bool:
    with contextlib.suppress(requests.RequestException):
        return requests.get(f"{url}/api/v2/monitor/health", timeout=3).status_code == 200
    return False
