"""The connection form and the Test button, driven in headless Chromium against a real API server.

A user logs in on the login page, opens Admin -> Connections -> Add Connection, picks
"Stripe", sees the contract's fields with their labels (secrets as password inputs, only
the contract's required secrets marked required), fills the key, webhook secret and the
local server's URL, saves, and presses the row's Test action: success against real
localstripe, failure for a key the recording stub rejects with 401.

The API tests below prove why the Test button works at all on Airflow 3.3.1-3.3.2: the UI
posts ``port: 0`` for a connection stored without a port, which Airflow answers with 400
for any connection type; the provider's plugin middleware is what lets Stripe's through.

Screenshots of every step go to ``test-output/browser/`` (git-ignored). Needs Debian's
``chromium`` (or ``CHROMIUM=/path``) and the ``playwright`` Python package only; the
browser is never downloaded.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_stripe.connection.contract import STRIPE_CONTRACT, snake_case
from airflow_provider_stripe.connection.form import CONNECTION_FIELDS, FIELDS_BY_NAME
from airflow_provider_stripe.constants import CONN_TYPE, HOOK_NAME
from tests import airflow_env
from tests.airflow.api_server import ApiServer, run_api_server
from tests.servers.stub_stripe import StubServer, run_stub, stripe_error

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page, Response

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

SCREENSHOTS = airflow_env.REPO / "test-output" / "browser"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TEST_PATH = "/api/v2/connections/test"
GOOD_KEY = "sk_test_51UiGoodKey8c2d"
BAD_KEY = "sk_test_51UiRejectedKey3f9a"
WEBHOOK_SECRET = "whsec_UiSecret7e1b"
UI_CONN_ID = "stripe_ui"
BAD_CONN_ID = "stripe_ui_bad_key"
PORT_DIFFERS = "The host or port to test differs from the stored connection"


def chromium_path() -> str | None:
    """Debian's Chromium (``apt-get install chromium``), or ``$CHROMIUM``."""
    for candidate in (os.environ.get("CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and Path(candidate).exists():
            return candidate
    return None


@pytest.fixture(scope="module")
def server(localstripe_url: str) -> Iterator[ApiServer]:
    with run_api_server() as api_server:
        yield api_server


@pytest.fixture(scope="module")
def rejecting_stub() -> Iterator[StubServer]:
    """Answers 401 "Invalid API Key provided" (a Stripe error body) to every key but one."""
    with run_stub(api_keys={"sk_test_51TheOnlyValidKey"}) as stub:
        yield stub


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (Python package only)")
    executable = chromium_path()
    if executable is None:
        pytest.skip("no Chromium: apt-get install -y chromium (or set CHROMIUM=/path/to/chromium)")
    sync_api.expect.set_options(timeout=15_000)  # a loaded CI machine renders slowly
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(20_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def shot(target: Page | Locator, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    target.screenshot(path=str(SCREENSHOTS / f"{name}.png"), animations="disabled")


def label_pattern(label: str) -> re.Pattern[str]:
    """A field label as rendered: the text, then a ``*`` when Airflow marks the field required."""
    return re.compile(rf"^\s*{re.escape(label)}\s*\*?\s*$")


def form_field(dialog: Locator, label: str) -> Locator:
    """The field group (label, input, help) with this label. Airflow 3.3's labels do not point at
    their inputs (``for`` differs from the input's id), so the group is found through its label."""
    return dialog.get_by_role("group").filter(has=dialog.page.locator("label", has_text=label_pattern(label)))


def input_type(group: Locator) -> str:
    """The effective ``type`` of the field's input (``text`` when the attribute is absent)."""
    return str(group.locator("input").first.evaluate("e => e.type"))


def is_test_request(response: Response) -> bool:
    return response.url.endswith(TEST_PATH) and response.request.method == "POST"


def toast(page: Page, kind: str) -> Locator:
    """The UI's notification of this type (``success`` / ``error``)."""
    return page.locator(f"[data-scope=toast][data-part=root][data-type={kind}]")


def press_test(page: Page, conn_id: str) -> tuple[dict[str, Any], int, dict[str, Any]]:
    """Press the row's Test action; return the request body the UI sent, the status and the answer."""
    row = page.get_by_role("row").filter(has=page.get_by_role("cell", name=conn_id, exact=True))
    with page.expect_response(is_test_request) as answer:
        row.get_by_role("button", name="Test Connection").click()
    response = answer.value
    body = response.request.post_data_json
    assert isinstance(body, dict), body
    return body, response.status, response.json()


def log_in(page: Page, server: ApiServer) -> None:
    page.goto(server.url + "/")
    page.get_by_label("Username").fill(server.username)
    page.get_by_label("Password").fill(server.password)
    shot(page, "01-login")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(server.url + "/")


@pytest.mark.airflow_min("3.3", reason="drives Airflow 3.3's connection UI (3.1's form: test_provider_registration)")
def test_add_stripe_connection_and_press_test(
    page: Page, server: ApiServer, localstripe_url: str, rejecting_stub: StubServer
) -> None:
    from playwright.sync_api import expect

    log_in(page, server)
    page.get_by_role("button", name="Admin").click()
    page.get_by_role("menuitem", name="Connections").click()
    page.wait_for_url("**/connections")
    shot(page, "02-connections")

    # -- the form ------------------------------------------------------------------------
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Connection ID").fill(UI_CONN_ID)
    dialog.get_by_role("combobox", name="Connection Type").click()
    page.get_by_role("option", name=HOOK_NAME, exact=True).click()
    dialog.get_by_role("button", name="Extra Fields", exact=True).click()
    expect(form_field(dialog, FIELDS_BY_NAME["api_key"].label)).to_be_visible()
    page.set_viewport_size({"width": 1400, "height": 2600})  # the whole form in one screenshot
    shot(dialog, "03-stripe-form")

    for schema, secret in ((STRIPE_CONTRACT.secrets, True), (STRIPE_CONTRACT.config, False)):
        for prop, prop_schema in schema.properties.items():  # the contract's fields, with its help text
            group = form_field(dialog, FIELDS_BY_NAME[snake_case(prop)].label)
            expect(group).to_have_count(1)
            expect(group).to_contain_text(prop_schema["description"])
            assert input_type(group) == ("password" if secret else "text"), prop
    for field in CONNECTION_FIELDS:  # every field of the form; free-text ones masked exactly when secret
        group = form_field(dialog, field.label)
        expect(group).to_have_count(1)
        if field.schema.get("type") == "string" and "enum" not in field.schema:
            assert input_type(group) == ("password" if field.secret else "text"), field.name
    required = {
        label.inner_text().rstrip(" *\n")
        for label in dialog.locator("label[data-required]").all()
        if label.is_visible() and label.inner_text().rstrip(" *\n") not in ("Connection ID", "Connection Type")
    }
    assert required == {FIELDS_BY_NAME[snake_case(p)].label for p in STRIPE_CONTRACT.secrets.required}
    for standard in ("host", "login", "password", "port", "schema"):
        expect(dialog.locator(f"[name={standard}]")).to_have_count(0)

    form_field(dialog, FIELDS_BY_NAME["api_key"].label).locator("input").fill(GOOD_KEY)
    form_field(dialog, FIELDS_BY_NAME["webhook_secret"].label).locator("input").fill(WEBHOOK_SECRET)
    form_field(dialog, FIELDS_BY_NAME["base_url"].label).locator("input").fill(localstripe_url)
    save = dialog.get_by_role("button", name="Save")
    expect(save).to_be_enabled()
    shot(dialog, "04-stripe-form-filled")
    with page.expect_response(lambda r: r.url.endswith("/api/v2/connections") and r.request.method == "POST") as saved:
        save.click()
    assert saved.value.status == 201, saved.value.text()
    page.set_viewport_size({"width": 1400, "height": 1000})
    expect(page.get_by_role("cell", name=UI_CONN_ID, exact=True)).to_be_visible()
    shot(page, "05-saved")

    stored = server.api("GET", f"/api/v2/connections/{UI_CONN_ID}").json()
    assert stored["conn_type"] == CONN_TYPE and stored["port"] is None
    extra = json.loads(stored["extra"])
    assert extra["api_key"] == extra["webhook_secret"] == "***", "the API must not return secrets"
    assert extra["base_url"] == localstripe_url and extra["account_id"] is None

    # -- Test: success against localstripe ------------------------------------------------
    page.reload()  # a fresh list: the row's action works on what was stored
    body, status, answer = press_test(page, UI_CONN_ID)
    # The notification lasts 2 s: check its whole text at once, then photograph it.
    expect(toast(page, "success")).to_contain_text(
        re.compile(r"Test Connection Successful\s*Stripe connection OK: test mode")
    )
    shot(page, "06-test-success")
    assert body["conn_type"] == CONN_TYPE and body["port"] == 0, "the 3.3 UI posts port 0 (see the API test)"
    assert status == 200 and answer["status"] is True, answer
    assert "test mode" in answer["message"] and STRIPE_CONTRACT.version_policy.current_version in answer["message"]

    # -- Test: failure for a rejected key ---------------------------------------------------
    created = server.api(
        "POST",
        "/api/v2/connections",
        json={
            "connection_id": BAD_CONN_ID,
            "conn_type": CONN_TYPE,
            "extra": json.dumps({"api_key": BAD_KEY, "webhook_secret": WEBHOOK_SECRET, "base_url": rejecting_stub.url}),
        },
    )
    assert created.status_code == 201, created.text
    page.reload()
    _, status, answer = press_test(page, BAD_CONN_ID)
    expect(toast(page, "error")).to_contain_text(
        re.compile(r"Test Connection Failed\s*Stripe rejected the API key \(secret test key\): invalid API key")
    )
    shot(page, "07-test-failure")
    assert status == 200 and answer["status"] is False, answer
    assert BAD_KEY not in answer["message"]
    assert [r.api_key for r in rejecting_stub.requests] == [BAD_KEY], "one ping with the stored key"


def _ui_test_body(conn_id: str, conn_type: str, extra: dict[str, Any], port: int) -> dict[str, Any]:
    """The body Airflow 3.3's UI posts for a row's Test action (captured in the browser test)."""
    return {
        "connection_id": conn_id,
        "conn_type": conn_type,
        "description": "",
        "extra": json.dumps(extra),
        "host": "",
        "login": "",
        "password": "",
        "port": port,
        "schema": "",
    }


@pytest.mark.airflow_min("3.3", reason="the port-0 bug and its fix concern Airflow 3.3.1-3.3.2")
def test_port_zero_is_refused_without_the_fix_and_passes_with_it(server: ApiServer, localstripe_url: str) -> None:
    """Airflow 3.3.2 itself answers 400 to the UI's ``port: 0`` for a connection stored without a
    port; the same request for a Stripe connection passes only because the plugin drops port 0."""
    assert server.api("GET", "/api/v2/plugins/importErrors").json()["import_errors"] == []
    stripe_extra = {"api_key": GOOD_KEY, "webhook_secret": WEBHOOK_SECRET, "base_url": localstripe_url}
    for conn_id, conn_type, extra in (
        ("generic_no_port", "generic", {}),
        ("stripe_no_port", CONN_TYPE, stripe_extra),
    ):
        created = server.api(
            "POST",
            "/api/v2/connections",
            json={"connection_id": conn_id, "conn_type": conn_type, "extra": json.dumps(extra)},
        )
        assert created.status_code == 201, created.text

    # Without the fix (any other connection type): Airflow refuses the UI's request.
    refused = server.api("POST", TEST_PATH, json=_ui_test_body("generic_no_port", "generic", {}, port=0))
    assert refused.status_code == 400 and PORT_DIFFERS in refused.json()["detail"], refused.text

    # With the fix: the same request for the Stripe connection runs the health check.
    fixed = server.api("POST", TEST_PATH, json=_ui_test_body("stripe_no_port", CONN_TYPE, stripe_extra, port=0))
    assert fixed.status_code == 200 and fixed.json()["status"] is True, fixed.text

    # The middleware drops only port 0: Airflow's own check still guards a real port change.
    changed = server.api("POST", TEST_PATH, json=_ui_test_body("stripe_no_port", CONN_TYPE, stripe_extra, port=8443))
    assert changed.status_code == 400 and PORT_DIFFERS in changed.json()["detail"], changed.text


def test_restricted_key_is_reported_valid_but_restricted(server: ApiServer, stub_stripe: StubServer) -> None:
    """What the Test button shows for a restricted key that may not read the balance (403)."""
    stub_stripe.enqueue(stripe_error(403, message="The provided key does not have the required permissions."))
    body = _ui_test_body(
        "stripe_restricted",
        CONN_TYPE,
        {"api_key": "rk_test_51UiRestricted5a0c", "webhook_secret": WEBHOOK_SECRET, "base_url": stub_stripe.url},
        port=0,
    )
    answer = server.api("POST", TEST_PATH, json=body)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["status"] is True
    assert "test mode" in result["message"] and "valid but restricted" in result["message"]
    assert "restricted test key" in result["message"] and "rk_test_51UiRestricted5a0c" not in result["message"]
