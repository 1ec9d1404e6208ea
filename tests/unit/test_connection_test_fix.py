"""The ASGI fix drops ``port: 0`` from Test requests for Stripe connections only."""

from __future__ import annotations

import json

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from airflow_provider_stripe.plugins.connection_test_fix import StripeConnectionTestPortFix, rewrite_test_body


def _app() -> TestClient:
    app = FastAPI()

    @app.post("/api/v2/connections/test")
    async def test(request: Request) -> dict:
        body = await request.body()
        return {"received": json.loads(body), "length": request.headers.get("content-length")}

    @app.post("/api/v2/connections")
    async def create(request: Request) -> dict:
        return {"received": json.loads(await request.body())}

    app.add_middleware(StripeConnectionTestPortFix)
    return TestClient(app)


@pytest.mark.parametrize("port", [0, "0"])
def test_port_zero_dropped_for_stripe(port: object) -> None:
    body = {"connection_id": "stripe_default", "conn_type": "stripe", "port": port, "host": ""}
    answer = _app().post("/api/v2/connections/test", json=body).json()
    assert "port" not in answer["received"]
    assert answer["received"]["connection_id"] == "stripe_default"
    assert int(answer["length"]) == len(json.dumps(answer["received"]).encode())


@pytest.mark.parametrize(
    "body",
    [
        {"connection_id": "x", "conn_type": "http", "port": 0},
        {"connection_id": "x", "conn_type": "stripe", "port": 8443},
        {"connection_id": "x", "conn_type": "stripe"},
    ],
)
def test_everything_else_untouched(body: dict) -> None:
    assert _app().post("/api/v2/connections/test", json=body).json()["received"] == body


def test_other_routes_untouched() -> None:
    body = {"connection_id": "x", "conn_type": "stripe", "port": 0}
    assert _app().post("/api/v2/connections", json=body).json()["received"] == body


def test_non_json_passes_through() -> None:
    assert rewrite_test_body(b"not json") is None
    assert rewrite_test_body(b"[1, 2]") is None
