"""Issue 9, defects 4 and 5: what the command line prints can be copied and says where it looked.

`tradingd up` and `tradingd audit verify` run as subprocesses with their output to a pipe (not a
terminal: rich would wrap at 80 columns there) and, for audit verify, from a folder other than the
daemon's. Logs to a file or a pipe are one line per record; JSON logs stay valid JSON.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import signal
import socket
import sys
import uuid
from pathlib import Path

import orjson

from daemon.logs import make_handler
from storage.audit import audit_draft, write_audit
from storage.audit_anchor import append_anchor
from tests.conftest import TEST_REDIS_URL
from tests.session_db import SessionDb

ROOT = Path(__file__).resolve().parents[1]


def _env(**extra: str) -> dict[str, str]:
    """This process's environment without TRADINGD_ settings (the test gives its own), with an
    80-column default (what rich assumes for a pipe) and the project importable from any folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADINGD_") and k != "COLUMNS"}
    return {**env, "PYTHONPATH": str(ROOT), "TRADINGD_REDIS_URL": TEST_REDIS_URL, **extra}


async def _cli(*args: str, env: dict[str, str], cwd: Path) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "daemon.cli", *args, env=env, cwd=cwd, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode()


async def _audit_rows(sessions, n: int) -> None:
    async with sessions.begin() as s:
        await write_audit(SessionDb(s), [audit_draft(actor="test", action="thing", subject=f"s{i}",
                                                     payload={"i": i}) for i in range(n)])


async def test_audit_verify_from_another_folder_says_where_it_looked(sessions, database_url, redis, tmp_path):
    await _audit_rows(sessions, 3)
    elsewhere = tmp_path / "some other folder"
    elsewhere.mkdir()
    env = _env(TRADINGD_DATABASE_URL=database_url)  # the default anchor path, relative to the folder

    code, said = await _cli("audit", "verify", env=env, cwd=elsewhere)
    expected = elsewhere / ".tradingd" / "audit-anchors.jsonl"
    assert code == 0, said
    verdict = next(line for line in said.splitlines() if "audit log intact" in line)
    # one line, whole, naming the absolute path it looked at and what that means
    assert f"no anchor file at {expected}, so nothing was checked against anchors" in verdict, said
    assert "exit 0: the chain itself verifies" in verdict and "TRADINGD_AUDIT_ANCHOR_PATH" in verdict, said

    # a file that holds anchors for other databases only says so, naming them
    append_anchor(expected, "tradingd_elsewhere", (1, "a" * 64))
    code, said = await _cli("audit", "verify", env=env, cwd=elsewhere)
    database = database_url.rsplit("/", 1)[1]
    verdict = next(line for line in said.splitlines() if "audit log intact" in line)
    assert code == 0 and f"no anchors for database {database!r} in {expected} (it holds anchors for " \
                         "tradingd_elsewhere)" in verdict, said


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_the_up_banner_prints_the_claude_command_whole_to_a_pipe(database_url, redis, tmp_path):
    port = _free_port()
    env = _env(TRADINGD_DATABASE_URL=database_url, TRADINGD_MCP_HTTP_PORT=str(port),
               TRADINGD_DAEMON_HTTP_PORT="0", TRADINGD_SIMULATOR_PORT="0",
               TRADINGD_QUEUE_NAME=f"tradingd:test:{uuid.uuid4().hex[:8]}",
               TRADINGD_AUDIT_ANCHOR_PATH=str(tmp_path / "anchors.jsonl"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "daemon.cli", "up", "--no-migrate", env=env, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        async def until_banner() -> None:
            while not any("Ctrl-C or SIGTERM stops it cleanly" in line for line in lines):
                raw = await proc.stdout.readline()
                assert raw, "tradingd up ended before its banner:\n" + "".join(lines)
                lines.append(raw.decode())

        await asyncio.wait_for(until_banner(), 60)
    finally:
        proc.send_signal(signal.SIGTERM)
        rest, _ = await asyncio.wait_for(proc.communicate(), 60)
        lines.extend(rest.decode().splitlines(keepends=True))
    token = tmp_path / ".tradingd" / "mcp_token"
    command = (f"claude mcp add --transport http tradingd http://127.0.0.1:{port}/mcp "
               f'--header "Authorization: Bearer $(cat {token})"')
    assert any(line.strip() == command for line in lines), "".join(lines)
    assert token.read_text().strip() not in "".join(lines)  # the token itself is never printed
    # logs to a pipe: one plain line per record, the long ones whole
    anchors = [line for line in lines if "tradingd.anchors: audit anchors for database" in line]
    assert anchors and anchors[0].rstrip().endswith(str(tmp_path / "anchors.jsonl")), "".join(lines)
    assert proc.returncode == 0, "".join(lines)


def _record(msg: str) -> logging.LogRecord:
    return logging.LogRecord("tradingd.test", logging.INFO, __file__, 1, msg, None, None)


def test_logs_to_a_file_are_one_line_per_record_and_json_stays_json():
    long = "fill booked: " + "x" * 300
    out = io.StringIO()
    handler = make_handler(json=False, stream=out)
    handler.emit(_record(long))
    assert out.getvalue().count("\n") == 1 and long in out.getvalue()

    out = io.StringIO()
    handler = make_handler(json=True, stream=out)
    tricky = 'tool place_order failed: "qty" is 0\nsecond line \\ end'
    handler.emit(_record(tricky))
    doc = orjson.loads(out.getvalue())
    assert doc["msg"] == tricky and doc["level"] == "INFO" and doc["logger"] == "tradingd.test"
