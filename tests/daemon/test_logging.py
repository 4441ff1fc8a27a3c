"""Issue 10 item 6: logs through structlog are valid JSON lines carrying the job's context, a
console line per record, and no secret in any line, whatever a message or a tool input quotes.

The secret grep runs the real processes (`tradingd worker`, `tradingd mcp --http`) with a database
password, an HTTP token and venue keys in their environment, drives tools over HTTP (failing ones
quoting the secrets among them) and reads every line they logged.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError
from pydantic import SecretStr
from structlog.contextvars import bound_contextvars

from daemon.logs import MASK, SecretMasker, make_handler, secret_values
from jobs.commands import PlaceOrder
from storage.settings import Settings, load_settings
from storage.state import keys
from tests.helpers import put_quote
from tests.stack import command_queue, eventually

REPO = Path(__file__).resolve().parents[2]


def _logger(handler: logging.Handler) -> logging.Logger:
    """A logger of its own writing only to `handler` (the root's handlers stay out of it)."""
    log = logging.getLogger(f"tradingd.test.logs.{uuid.uuid4().hex[:6]}")
    log.handlers, log.propagate = [handler], False
    log.setLevel(logging.DEBUG)
    return log


TRICKY = ['tool place_order failed: "qty" is 0', "two\nlines\r\n and a tab\t", "prix: 60 000 € — 価格 ✓",
          'back\\slash and {"json": "inside"}']


def test_json_lines_are_valid_for_quotes_newlines_non_ascii_and_an_exception():
    out = io.StringIO()
    log = _logger(make_handler(json=True, stream=out, masker=SecretMasker()))
    for msg in TRICKY:
        log.info("%s", msg)
    try:
        raise ValueError('bad "value"\nsecond line é')
    except ValueError:
        log.exception("crashed on %s", "é")
    lines = out.getvalue().splitlines()
    assert len(lines) == len(TRICKY) + 1  # one line per record, newlines inside escaped
    docs = [orjson.loads(line) for line in lines]
    assert [d["msg"] for d in docs[:-1]] == TRICKY
    assert all(d["level"] in ("INFO", "ERROR") and d["logger"] == log.name for d in docs)
    for d in docs:
        ts = datetime.fromisoformat(d["ts"])
        assert ts.utcoffset() is not None and ts.utcoffset().total_seconds() == 0
    crash = docs[-1]
    assert crash["level"] == "ERROR" and crash["msg"] == "crashed on é"
    assert "Traceback" in crash["exc"] and 'ValueError: bad "value"\nsecond line é' in crash["exc"]
    assert list(crash)[:4] == ["ts", "level", "logger", "msg"] and list(crash)[-1] == "exc"


def test_bound_context_is_on_every_line_logged_inside_it_and_gone_after():
    out = io.StringIO()
    log = _logger(make_handler(json=True, stream=out, masker=SecretMasker()))
    with bound_contextvars(command_id="cmd-1", venue="paper"):
        with bound_contextvars(client_order_id="cmd-1-a"):
            log.info("inside")
        log.info("outer")
    log.info("after")
    inside, outer, after = (orjson.loads(line) for line in out.getvalue().splitlines())
    assert (inside["command_id"], inside["client_order_id"], inside["venue"]) == ("cmd-1", "cmd-1-a", "paper")
    assert outer["command_id"] == "cmd-1" and "client_order_id" not in outer
    assert not {"command_id", "client_order_id", "venue"} & set(after)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("stream", [io.StringIO, _Terminal], ids=["file", "terminal"])
def test_console_mode_writes_one_line_per_record(stream):
    out = stream()
    log = _logger(make_handler(json=False, stream=out, masker=SecretMasker()))
    with bound_contextvars(command_id="cmd-2"):
        for msg in TRICKY:
            log.warning("%s", msg)
    lines = out.getvalue().splitlines()
    assert len(lines) == len(TRICKY), lines
    assert all("cmd-2" in line and log.name in line for line in lines)
    if stream is io.StringIO:  # a file: `ts LEVEL logger: msg key=value`, no colour codes
        assert lines[0].split(" ", 3)[1:3] == ["WARNING", f"{log.name}:"] and "\x1b[" not in out.getvalue()
        assert lines[1].endswith("two\\nlines\\r\\n and a tab\t command_id=cmd-2")


def test_the_mask_covers_keys_urls_bearer_tokens_text_and_configured_secrets():
    masker = SecretMasker(["s3cr3t/pw+1"])
    out = io.StringIO()
    log = _logger(make_handler(json=True, stream=out, masker=masker))
    log.info("db at postgresql+asyncpg://app:other-pw@db:5432/x, header Authorization: Bearer abc.def")
    log.info("ccxt said: apiKey=AKIA123&signature=deadbeef; {'secret': 'xyz789'} password: hunter22")
    log.info("configured %s and url-encoded %s", "s3cr3t/pw+1", "s3cr3t%2Fpw%2B1")
    try:
        raise RuntimeError("connect to redis://:s3cr3t/pw+1@cache failed")
    except RuntimeError:
        log.exception("no cache")
    text = out.getvalue()
    for secret in ("other-pw", "abc.def", "AKIA123", "deadbeef", "xyz789", "hunter22", "s3cr3t"):
        assert secret not in text, (secret, text)
    docs = [orjson.loads(line) for line in text.splitlines()]
    assert docs[0]["msg"] == ("db at postgresql+asyncpg://app:***@db:5432/x, "
                              "header Authorization: Bearer ***")
    assert docs[2]["msg"] == f"configured {MASK} and url-encoded {MASK}"
    # keys named like a secret, nested ones too, whatever their value
    nested = masker(None, "info", {"event": "e", "ctx": {"api_key": "k", "n": [{"token": "t"}]}, "qty": 3})
    assert nested == {"event": "e", "ctx": {"api_key": MASK, "n": [{"token": MASK}]}, "qty": 3}


def test_configured_secrets_come_from_settings_urls_and_the_environment():
    s = load_settings(database_url="postgresql+asyncpg://postgres:db-pw-1@127.0.0.1:5432/x",
                      redis_url="redis://:redis-pw-1@127.0.0.1:6379/0",
                      mcp_http_token=SecretStr("http-tok-1"))
    found = secret_values(s, environ={"TRADINGD_BINANCE_API_SECRET": "venue-sec-1", "TRADINGD_MODE": "paper",
                                      "OTHER_TOKEN": "not-ours"})
    assert found == {"db-pw-1", "redis-pw-1", "http-tok-1", "venue-sec-1"}


@pytest.fixture
def json_root_logs() -> Iterator[io.StringIO]:
    """JSON logs of every logger (the root's handler, as `setup_logging` installs it), at INFO."""
    out = io.StringIO()
    root = logging.getLogger()
    handler, level = make_handler(json=True, stream=out), root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


async def test_an_orders_lines_in_the_worker_carry_its_command_client_order_id_and_venue(
        json_root_logs, settings, redis, worker):
    await put_quote(redis, "BTC/USDT", "60000.00", "60010.00")
    async with command_queue(settings) as queue:
        done = await queue.submit(PlaceOrder(command_id="logs:ctx", symbol="BTC/USDT", side="buy",
                                             type="market", qty=Decimal("0.01")), 10)
    assert done is not None and done.command.status == "succeeded", done
    records = [orjson.loads(line) for line in json_root_logs.getvalue().splitlines()]
    fills = [r for r in records if r["logger"] == "tradingd.fills"]
    assert fills, records
    client_order_id = done.order.client_order_id if hasattr(done.order, "client_order_id") else None
    for r in fills:
        assert r["command_id"] == "logs:ctx" and r["venue"] == "paper", r
        assert r["client_order_id"] and (client_order_id is None or r["client_order_id"] == client_order_id)
    ready = [r for r in records if r["msg"].startswith("worker ready")]
    assert ready and "command_id" not in ready[0]  # the worker's own lines carry no job's context


# ---- the secret grep, on the real processes -------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def _call(client: Client, tool: str, args: dict[str, object]) -> object:
    """The tool's structured answer, or its error text (failing calls are part of the test)."""
    try:
        return (await client.call_tool(tool, args)).structured_content
    except ToolError as e:
        return str(e)


async def test_no_secret_reaches_any_log_line_of_the_worker_or_the_bridge(settings: Settings, redis,
                                                                          tmp_path):
    tag = uuid.uuid4().hex[:12]
    db_password, token = f"dbpw-{tag}", f"httptok-{tag}"
    venue_key, venue_secret = f"vkey-{tag}", f"vsecret-{tag}"
    secrets = [db_password, token, venue_key, venue_secret]
    port = _free_port()
    database_url = settings.database_url.replace("://postgres@", f"://postgres:{db_password}@", 1)
    assert db_password in database_url  # the test's Postgres trusts local connections: any password works
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TRADINGD_")},
           "PYTHONPATH": str(REPO), "TRADINGD_DATABASE_URL": database_url,
           "TRADINGD_REDIS_URL": settings.redis_url, "TRADINGD_QUEUE_NAME": settings.queue_name,
           "TRADINGD_LOG_JSON": "true", "TRADINGD_LOG_LEVEL": "DEBUG",
           "TRADINGD_MCP_HTTP_TOKEN": token, "TRADINGD_MCP_HTTP_PORT": str(port),
           "TRADINGD_BINANCE_API_KEY": venue_key, "TRADINGD_BINANCE_API_SECRET": venue_secret,
           "TRADINGD_ENFORCE_MARKET_HOURS": "false",
           "TRADINGD_AUDIT_ANCHOR_PATH": str(tmp_path / "anchors.jsonl")}
    logs = {name: tmp_path / f"{name}.log" for name in ("worker", "mcp")}
    procs = []
    try:
        for name, args in (("worker", ["worker"]), ("mcp", ["mcp", "--http"])):
            with logs[name].open("wb") as err:
                procs.append(await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "daemon.cli", *args, cwd=tmp_path, env=env,
                    stdin=subprocess.DEVNULL, stdout=err, stderr=subprocess.STDOUT))
        await eventually(lambda: redis.hlen(keys.BALANCES), timeout=30)  # the worker is up

        async def connected() -> Client | None:
            client = Client(f"http://127.0.0.1:{port}/mcp", auth=token, timeout=10)
            try:
                await client.__aenter__()
            except Exception:
                return None
            return client

        client = await eventually(connected, timeout=30, every=0.2)
        try:
            await put_quote(redis, "BTC/USDT", "60000.00", "60010.00")  # fresh (the bridge took a while)
            order = {"symbol": "BTC/USDT", "side": "buy", "type": "market", "qty": "0.01"}
            preview = await _call(client, "preview_order", order)
            assert isinstance(preview, dict) and preview["risk"]["allowed"], preview["risk"]
            placed = await _call(client, "place_order", {"token": preview["token"], **order})
            assert isinstance(placed, dict) and placed["command"]["status"] == "succeeded", placed
            # failing calls, each quoting a secret as its input: the bridge logs why each failed
            failures = [await _call(client, "get_quote", {"symbol": venue_secret}),
                        await _call(client, "get_order", {"order_id": db_password}),
                        await _call(client, "place_order", {"token": token, **order}),
                        await _call(client, "preview_order", {**order, "symbol": f"{venue_key}/USDT"}),
                        await _call(client, "get_quote", {"symbol": database_url})]
            assert all(isinstance(f, str) for f in failures), failures
            await _call(client, "health", {})
        finally:
            await client.__aexit__(None, None, None)
        await asyncio.sleep(0.3)  # the last lines written
    finally:
        for proc in procs:
            await _stop(proc)
    text = {name: path.read_text(errors="replace") for name, path in logs.items()}
    for name, lines in text.items():
        for line in lines.splitlines():  # JSON mode: every line is one JSON object, uvicorn's too
            assert line.startswith("{") and isinstance(orjson.loads(line), dict), (name, line)
        for secret in secrets:
            assert secret not in lines, f"{secret!r} in the {name} log:\n{lines[-3000:]}"
    failed = [orjson.loads(line) for line in text["mcp"].splitlines() if "failed:" in line]
    assert len(failed) >= 4 and all(MASK in r["msg"] for r in failed[:2]), failed  # logged, masked
    fills = [orjson.loads(line) for line in text["worker"].splitlines() if '"tradingd.fills"' in line]
    assert fills and all(r["venue"] == "paper" and r["client_order_id"] and r["command_id"] for r in fills)
