"""The payout-batch view (:mod:`airflow_provider_stripe.plugins.payout_view`) in a real API server.

The example payout batch DAG runs for real (``dag.test()`` against localstripe) on a batch
holding a reference that is HTML and an item Stripe refuses (a currency the account has no
balance in: the run fails, its results are still published); then ``airflow api-server``
starts on the same DB, a user logs in in headless Chromium and opens the run's view: its
items, outcomes, statuses and Dashboard links, the reference shown as text. Without a login the view answers 401, with
a forged token 403, and shows no data either way.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest
import requests

from airflow_provider_stripe.constants import PAYOUT_VIEW_URL_PREFIX
from airflow_provider_stripe.testing.connection import LOCAL_TEST_KEY, connection_env
from airflow_provider_stripe.testing.settlement import SettlementSimulator
from tests import airflow_env
from tests.airflow.api_server import ApiServer, run_api_server
from tests.airflow.test_connection_ui_browser import browser, log_in, page, shot  # noqa: F401 (fixtures)

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

DAG_ID = "stripe_payout_batch"
INJECTION = '<script>alert("x")</script>'


@pytest.fixture(scope="module")
def batch_run(localstripe_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One real run of the example batch DAG; its run id and the instructions it paid."""
    airflow_env.migrate()
    tag = secrets.token_hex(4)  # fresh references: earlier tests' payouts are not "already paid"
    items = [
        {"reference": f"inv-{tag}-1", "amount": 1250, "currency": "eur"},
        {"reference": f"{INJECTION}{tag}", "amount": 990, "currency": "eur"},
        {"reference": f"inv-{tag}-3", "amount": 700, "currency": "usd"},  # refused by Stripe
    ]
    path = tmp_path_factory.mktemp("view") / "batch.jsonl"
    path.write_text("".join(json.dumps(item) + "\n" for item in items))
    from airflow_provider_stripe.compat import dagbag_module

    with pytest.MonkeyPatch.context() as patch:
        for name, value in connection_env("stripe_default", base_url=localstripe_url).items():
            patch.setenv(name, value)
        bag = dagbag_module().DagBag(dag_folder=str(airflow_env.DAGS_FOLDER / f"{DAG_ID}.py"))
        assert not bag.import_errors, bag.import_errors
        with SettlementSimulator(localstripe_url, LOCAL_TEST_KEY, delay=0.5):
            dag_run = bag.get_dag(DAG_ID).test(run_conf={"instructions_file": str(path), "poll_seconds": 0.5})
    assert str(dag_run.state) == "failed"  # the refused item; the other two are paid
    return {"run_id": dag_run.run_id, "items": items, "tag": tag}


@pytest.fixture(scope="module")
def server(batch_run: dict[str, Any]) -> Iterator[ApiServer]:
    with run_api_server() as api_server:
        yield api_server


def view_path(run_id: str) -> str:
    return f"{PAYOUT_VIEW_URL_PREFIX}/runs/{DAG_ID}/{quote(run_id, safe='')}"


def test_finance_sees_the_batch_items_outcomes_and_links(
    server: ApiServer,
    batch_run: dict[str, Any],
    page: Page,  # noqa: F811 (fixture) -- after the DAG run: dag.test() cannot run inside Playwright's event loop
) -> None:
    from playwright.sync_api import expect

    log_in(page, server)
    page.goto(server.url + view_path(batch_run["run_id"]))
    shot(page, "payout-view-run")
    rows = page.locator("table").last.locator("tr")
    expect(rows).to_have_count(1 + len(batch_run["items"]))
    for item in batch_run["items"][:2]:
        cells = rows.filter(has_text=item["reference"]).locator("td")  # the HTML reference is there as text
        expect(cells.nth(2)).to_have_text("created")
        expect(cells.nth(3)).to_have_text(re.compile(r"^po_\w+$"))
        expect(cells.nth(4)).to_have_text(re.compile(r"^(pending|in_transit|paid)$"))
        payout = cells.nth(3).inner_text()
        link = cells.nth(5).locator("a")
        expect(link).to_have_attribute("href", f"https://dashboard.stripe.com/test/payouts/{payout}")
    refused = rows.filter(has_text=batch_run["items"][2]["reference"]).locator("td")
    expect(refused.nth(2)).to_have_text("failed")
    expect(refused.nth(3)).to_have_text("")
    expect(refused.nth(5).locator("a")).to_have_count(0)
    expect(page.locator("script")).to_have_count(0)  # the reference was not run as markup
    totals = page.locator("table").nth(1)
    expect(totals.get_by_role("row").filter(has_text="created")).to_contain_text("22.40 EUR")
    expect(totals.get_by_role("row").filter(has_text="failed")).to_contain_text("7.00 USD")
    counts = page.locator("table").first
    expect(counts.get_by_role("row").filter(has_text="created")).to_contain_text("2")
    expect(counts.get_by_role("row").filter(has_text="failed")).to_contain_text("1")
    assert LOCAL_TEST_KEY not in page.content()

    page.goto(server.url + f"{PAYOUT_VIEW_URL_PREFIX}/")  # the menu's list of recent batch runs
    shot(page, "payout-view-list")
    page.get_by_role("row").filter(has_text=batch_run["run_id"]).get_by_role("link", name=DAG_ID).click()
    expect(page.locator("h1")).to_have_text(f"Payout batch: {DAG_ID} / {batch_run['run_id']}")


def test_the_view_is_in_the_menu_and_on_each_dag_run(server: ApiServer) -> None:
    plugins = server.api("GET", "/api/v2/plugins").json()["plugins"]
    (stripe,) = [p for p in plugins if p["name"] == "stripe"]
    views = {v["destination"]: v["href"] for v in stripe["external_views"]}
    run_view = f"{PAYOUT_VIEW_URL_PREFIX}/runs/{{DAG_ID}}/{{RUN_ID}}"
    assert views == {"nav": f"{PAYOUT_VIEW_URL_PREFIX}/", "dag_run": run_view}


def test_without_a_login_the_view_shows_nothing(server: ApiServer, batch_run: dict[str, Any]) -> None:
    for path in (view_path(batch_run["run_id"]), f"{PAYOUT_VIEW_URL_PREFIX}/"):
        anonymous = requests.get(server.url + path, timeout=30)
        forged = requests.get(server.url + path, headers={"Authorization": "Bearer not.a.jwt"}, timeout=30)
        assert (anonymous.status_code, forged.status_code) == (401, 403), (anonymous.text, forged.text)
        assert batch_run["tag"] not in anonymous.text + forged.text
    bad = server.api("GET", f"{PAYOUT_VIEW_URL_PREFIX}/runs/{DAG_ID}/{quote('a<b', safe='')}")
    assert bad.status_code == 400, bad.text
