"""Both contract windows are enforced client-side, shared per connection, and via Redis across processes."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from airflow_provider_stripe.errors import RateLimitStorageError, RateLimitWaitExceeded, StripeProviderError
from airflow_provider_stripe.hooks.ratelimit import (
    STORAGE_TIMEOUT_S,
    RateLimitSpec,
    StripeRateLimiter,
    get_rate_limiter,
)
from airflow_provider_stripe.hooks.stripe import StripeHook
from tests.integration.stripe_task_context import stripe_connection
from tests.servers.stub_stripe import StubServer


@pytest.mark.parametrize(("per_minute", "per_hour"), [(3, 100), (100, 3)], ids=["minute-window", "hour-window"])
def test_each_window_binds(per_minute: int, per_hour: int) -> None:
    limiter = StripeRateLimiter(f"test-{per_minute}-{per_hour}-{time.time()}", RateLimitSpec(per_minute, per_hour))
    assert [limiter.try_acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.try_acquire()
    assert wait > 50  # the oldest slot frees up after (almost) a whole window
    with pytest.raises(RateLimitWaitExceeded, match="3"):
        limiter.acquire(max_wait=0.2)


def test_hooks_of_one_connection_share_one_limiter(monkeypatch: pytest.MonkeyPatch, stub_stripe: StubServer) -> None:
    conn_id = stripe_connection(monkeypatch, stub_stripe.url, rate_limit_per_minute=2)
    first, second = StripeHook(conn_id), StripeHook(conn_id)
    assert first.rate_limiter is second.rate_limiter
    first.get_client().v1.balance.retrieve()
    second.get_client().v1.balance.retrieve()

    done = threading.Event()

    def third() -> None:
        StripeHook(conn_id).get_client().v1.balance.retrieve()
        done.set()

    worker = threading.Thread(target=third, daemon=True)
    worker.start()
    assert not done.wait(1.0), "a third request went out inside the 2/min window"
    assert len(stub_stripe.requests) == 2
    # Free the window (as time would): the blocked request then goes out.
    with first.rate_limiter._lock:
        for window in first.rate_limiter._logs:
            window.clear()
    assert done.wait(5.0)
    assert len(stub_stripe.requests) == 3


async def test_async_callers_wait_without_blocking_the_loop() -> None:
    limiter = get_rate_limiter(f"async-{time.time_ns()}", RateLimitSpec(2, 100))
    await limiter.acquire_async()
    await limiter.acquire_async()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        for _ in range(5):
            await asyncio.sleep(0.05)
            ticks += 1

    waiting = asyncio.create_task(limiter.acquire_async())
    await ticker()
    assert ticks == 5 and not waiting.done()  # the loop ran while the third caller waited
    waiting.cancel()
    with pytest.raises(RateLimitWaitExceeded):
        await limiter.acquire_async(max_wait=0.3)


def test_threads_never_exceed_the_limit() -> None:
    limiter = StripeRateLimiter(f"threads-{time.time_ns()}", RateLimitSpec(50, 1000))
    admitted = 0
    lock = threading.Lock()

    def worker() -> None:
        nonlocal admitted
        for _ in range(20):
            if limiter.try_acquire() == 0:
                with lock:
                    admitted += 1

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert admitted == 50


@contextlib.contextmanager
def redis_server(password: str | None = None) -> Iterator[str]:
    """A private redis-server on a free 127.0.0.1 port; yield its URI (with ``password``, if given, required)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server not installed (.ci/run installs it)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    auth = ["--requirepass", password] if password else []
    proc = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no", *auth],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            time.sleep(0.05)
        yield f"redis://{f':{password}@' if password else ''}127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.slow
def test_redis_storage_shares_the_limit_across_processes() -> None:
    with redis_server() as uri:
        key = f"stripe:shared-{time.time_ns()}"
        spec = RateLimitSpec(5, 100, uri)
        script = (
            "import sys\n"
            "from airflow_provider_stripe.hooks.ratelimit import RateLimitSpec, StripeRateLimiter\n"
            f"lim = StripeRateLimiter({key!r}, RateLimitSpec(5, 100, {uri!r}))\n"
            "print(sum(lim.try_acquire() == 0 for _ in range(4)))\n"
        )
        import sys

        outputs = [
            subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
            for _ in range(2)
        ]
        admitted = [int(o.stdout.strip()) for o in outputs]
        assert sum(admitted) == 5, admitted
        assert StripeRateLimiter(key, spec).try_acquire() > 0


def test_memory_limiter_is_cheap_and_starts_no_threads() -> None:
    """The reason for not using limits' MemoryStorage: it starts an expiry timer thread per burst."""
    limiter = StripeRateLimiter(f"cheap-{time.time_ns()}", RateLimitSpec(20_000, 20_000))
    threads_before = threading.active_count()
    started = time.perf_counter()
    assert all(limiter.try_acquire() == 0 for _ in range(20_000))
    per_call = (time.perf_counter() - started) / 20_000
    assert limiter.try_acquire() > 59  # the window (plus its margin) is full
    assert threading.active_count() == threads_before
    assert per_call < 50e-6, f"{per_call * 1e6:.1f} us per acquire"


@pytest.mark.slow
def test_a_down_or_black_holed_redis_fails_closed_with_a_provider_error_naming_it() -> None:
    with redis_server(password="s3cret-pw") as uri:
        limiter = StripeRateLimiter("stripe:payouts_conn", RateLimitSpec(5, 100, uri))
        assert limiter.try_acquire() == 0
    # The server is gone: a refused connection.
    with pytest.raises(RateLimitStorageError) as down:
        limiter.try_acquire()
    assert isinstance(down.value, StripeProviderError)
    message = str(down.value)
    assert "stripe:payouts_conn" in message and "rate_limit_storage_uri" in message and "ConnectionError" in message
    assert "s3cret-pw" not in message and "***@127.0.0.1" in message

    # A black hole: the port accepts connections (the kernel's backlog) and never answers.
    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(8)
        uri = f"redis://:s3cret-pw@127.0.0.1:{hole.getsockname()[1]}/0"
        silent = StripeRateLimiter("stripe:payouts_conn", RateLimitSpec(5, 100, uri))
        started = time.monotonic()
        with pytest.raises(RateLimitStorageError) as held:
            silent.try_acquire()
        waited = time.monotonic() - started
    assert STORAGE_TIMEOUT_S * 0.8 <= waited < STORAGE_TIMEOUT_S * 4, f"waited {waited:.1f}s"
    assert "Timeout" in str(held.value) and "s3cret-pw" not in str(held.value)


@pytest.mark.slow
def test_a_payout_batch_on_a_down_redis_sends_nothing_and_names_the_storage(
    monkeypatch: pytest.MonkeyPatch, localstripe: str
) -> None:
    from airflow_provider_stripe.operators.payouts import StripePayoutBatchOperator
    from tests.integration.payout_helpers import eur_items, list_all_payouts, payout_context
    from tests.integration.stripe_task_context import TEST_KEY

    with redis_server(password="s3cret-pw") as uri:
        pass  # a port where Redis was: nothing listens there now
    conn_id = stripe_connection(monkeypatch, localstripe, rate_limit_storage_uri=uri)
    batch = StripePayoutBatchOperator(task_id="pay_out", stripe_conn_id=conn_id, payouts=eur_items(3))
    with pytest.raises(RateLimitStorageError) as caught:
        batch.execute(payout_context())
    assert "rate_limit_storage_uri" in str(caught.value) and "s3cret-pw" not in str(caught.value)
    assert list_all_payouts(localstripe, TEST_KEY) == [], "nothing may be sent while the limit cannot be counted"


def test_connections_holding_one_key_share_the_accounts_limit(
    monkeypatch: pytest.MonkeyPatch, stub_stripe: StubServer
) -> None:
    """Two connections with one key used to get a limit each (twice the contract's rate at Stripe)."""
    first = stripe_connection(monkeypatch, stub_stripe.url, rate_limit_per_minute=2)
    second = stripe_connection(monkeypatch, stub_stripe.url, rate_limit_per_minute=2)
    assert StripeHook(first).rate_limiter is StripeHook(second).rate_limiter
    StripeHook(first).get_client().v1.balance.retrieve()
    StripeHook(second).get_client().v1.balance.retrieve()
    with pytest.raises(RateLimitWaitExceeded):
        StripeHook(second).rate_limiter.acquire(max_wait=0.5)  # the platform account's 2/min are used up
    # Another account, or another key, is another limit at Stripe: not held back.
    StripeHook(second, account_id="acct_1Other").get_client().v1.balance.retrieve()
    other_key = stripe_connection(
        monkeypatch, stub_stripe.url, api_key="sk_test_51OtherKey000", rate_limit_per_minute=2
    )
    StripeHook(other_key).get_client().v1.balance.retrieve()
    assert [r.headers.get("Stripe-Account") for r in stub_stripe.requests] == [None, None, "acct_1Other", None]
