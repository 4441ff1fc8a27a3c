"""The signed webhook for DCA bots (issue 11 item 3) on the daemon's real HTTP server: a bot made
through create_dca_bot gets its secret once; unsigned, forged, stale and replayed signals are
refused with their status and reason (a replay also after Redis was flushed: Postgres's unique
nonce), each refusal logged without the secret; an accepted one is a bot_signals row."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastmcp import Client

from daemon.http import HttpServer, build_app
from daemon.webhooks import BotWebhooks
from jobs.domain.dca.signals import sign
from storage.repos import Pool, read
from storage.repos.signals import BotSignals
from tests.bots.test_bot_tools import ISSUE_BOT
from tests.helpers import call, put_quote


@pytest.fixture
async def http(pool: Pool, redis: Any) -> AsyncIterator[httpx.AsyncClient]:
    async def probe() -> dict[str, Any]:
        return {"status": "ok"}

    server = HttpServer(build_app(probe, BotWebhooks(pool, redis)), "127.0.0.1", 0)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=10) as c:
            yield c
    finally:
        await server.stop()


async def _bot(client: Client, redis: Any, conditions: list[dict[str, Any]]) -> tuple[str, str]:
    """A bot waiting for signals: (its webhook path, its secret as shown once)."""
    await put_quote(redis, "BTC/USDT", "59990", "60000")
    created = await call(client, "create_dca_bot", config={**ISSUE_BOT, "start_conditions": conditions})
    hook = created["webhook"]
    assert hook is not None and hook["path"] == f"/webhooks/bots/{created['bot']['bot_id']}"
    details = await call(client, "get_bot_details", bot_id=created["bot"]["bot_id"])
    assert hook["secret"] not in json.dumps(details) and details["webhook_path"] == hook["path"]
    return hook["path"], hook["secret"]


def _body(**fields: Any) -> bytes:
    return json.dumps({"timestamp": datetime.now(UTC).isoformat(), "nonce": "n-1", "pair": "BTC/USDT",
                       **fields}).encode()


async def test_signals_are_authenticated_fresh_and_accepted_once_even_after_a_flush(
        client: Client, redis: Any, http: httpx.AsyncClient, pool: Pool, caplog: pytest.LogCaptureFixture):
    path, secret = await _bot(client, redis, [{"kind": "tradingview"}])
    bot_id = path.rsplit("/", 1)[1]
    caplog.set_level(logging.INFO, "tradingd.webhooks")
    body = _body()

    def post(content: bytes, signature: str | None = None) -> Any:
        headers = {"content-type": "application/json"}
        if signature is not None:
            headers["X-Tradingd-Signature"] = signature
        return http.post(path, content=content, headers=headers)

    unsigned = await post(body)
    assert (unsigned.status_code, unsigned.json()["reason"]) == (401, "unsigned")
    forged = await post(body, sign(body, "not the secret"))
    assert (forged.status_code, forged.json()["reason"]) == (401, "forged")
    altered = await post(body.replace(b"BTC/USDT", b"ETH/USDT"), sign(body, secret))
    assert altered.status_code == 401
    stale_body = _body(timestamp=(datetime.now(UTC) - timedelta(minutes=5)).isoformat(), nonce="old")
    stale = await post(stale_body, sign(stale_body, secret))
    assert (stale.status_code, stale.json()["reason"]) == (400, "stale")

    accepted = await post(body, sign(body, secret))
    assert accepted.status_code == 202, accepted.text
    signal_id = accepted.json()["signal_id"]
    replayed = await post(body, sign(body, secret))
    assert (replayed.status_code, replayed.json()["reason"]) == (409, "replayed")
    await redis.flushdb()  # Redis forgets the nonce; Postgres does not
    after_flush = await post(body, sign(body, secret))
    assert (after_flush.status_code, after_flush.json()["reason"]) == (409, "replayed")

    tradingview = _body(nonce="n-2", secret=secret)  # TradingView: the secret in the body
    in_body = await post(tradingview)
    assert in_body.status_code == 202
    wrong = await post(_body(nonce="n-3", secret="guess"))
    assert (wrong.status_code, wrong.json()["reason"]) == (401, "forged")
    assert (await http.post("/webhooks/bots/bot_missing", content=body)).status_code == 404
    assert (await post(b"{" + b" " * 20000 + b"}")).status_code == 413

    async with read(pool) as db:
        stored = await BotSignals(db).unconsumed(bot_id)
    assert stored[0].id == signal_id and len(stored) == 2
    assert stored[0].payload["pair"] == "BTC/USDT" and "secret" not in stored[1].payload
    refusals = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert [m.split(": ")[1].split(" ")[0] for m in refusals] == [
        "unsigned", "forged", "forged", "stale", "replayed", "replayed", "forged", "unknown_bot", "malformed"]
    assert all(secret not in r.getMessage() for r in caplog.records)


async def test_a_rotated_secret_replaces_the_old_one_and_a_custom_signal_needs_its_name(
        client: Client, redis: Any, http: httpx.AsyncClient):
    path, old = await _bot(client, redis, [{"kind": "custom_signal", "name": "dip"}])
    bot_id = path.rsplit("/", 1)[1]
    unnamed = _body(nonce="c-0")
    assert (await http.post(path, content=unnamed, headers={"X-Tradingd-Signature": sign(unnamed, old)})
            ).json()["reason"] == "malformed"
    rotated = await call(client, "update_bot_config", bot_id=bot_id, rotate_webhook_secret=True)
    new = rotated["webhook"]["secret"]
    assert new != old
    body = _body(nonce="c-1", signal="dip")
    refused = await http.post(path, content=body, headers={"X-Tradingd-Signature": sign(body, old)})
    assert refused.status_code == 401
    accepted = await http.post(path, content=body, headers={"X-Tradingd-Signature": sign(body, new)})
    assert accepted.status_code == 202
    again = await call(client, "update_bot_config", bot_id=bot_id, changes={"name": "renamed"})
    assert again["webhook"] is None  # the secret is shown only when made
