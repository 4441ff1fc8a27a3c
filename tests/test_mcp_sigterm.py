"""`tradingd mcp` (stdio and --http) stops on SIGTERM with exit status 0, promptly.

Why: supervisors (docker compose, systemd) stop the bridge with SIGTERM and treat any other
exit status as a crash. The bridge used to die by the signal (143), and over stdio a clean stop
waited for the client to close stdin. Only a real process exercises the signal handling in
daemon/cli.py, so the bridge runs as `python -m daemon.cli mcp` here.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from storage.settings import Settings

REPO = Path(__file__).resolve().parents[1]
EXIT_TIMEOUT_S = 10.0
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                         "clientInfo": {"name": "sigterm-test", "version": "1"}}}


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    return {**os.environ, "TRADINGD_DATABASE_URL": settings.database_url,
            "TRADINGD_REDIS_URL": settings.redis_url, "TRADINGD_QUEUE_NAME": settings.queue_name,
            "TRADINGD_LOG_JSON": "true", **extra}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> tuple[int, float]:
    """SIGTERM, then (exit status, seconds it took); kills and fails if it does not exit in time."""
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"the bridge did not exit within {EXIT_TIMEOUT_S} s of SIGTERM") from None
    return code, time.monotonic() - started


def test_stdio_bridge_exits_0_on_sigterm_while_the_client_keeps_stdin_open(settings: Settings, tmp_path):
    log = tmp_path / "mcp-stdio.log"
    with log.open("wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "daemon.cli", "mcp"], cwd=REPO, env=_env(settings),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write((json.dumps(INITIALIZE) + "\n").encode())
        proc.stdin.flush()
        answer = json.loads(proc.stdout.readline())  # serving: it answered over stdio
        assert answer["id"] == 1 and "serverInfo" in answer["result"], answer
        code, took = _stop(proc)  # stdin stays open, as an assistant that is still running keeps it
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, f"exit status {code}; log:\n{log.read_text()[-3000:]}"
    assert took < 5, took


def test_stdio_bridge_exits_0_when_the_client_closes_stdin(settings: Settings):
    proc = subprocess.run([sys.executable, "-m", "daemon.cli", "mcp"], cwd=REPO, env=_env(settings),
                          input=(json.dumps(INITIALIZE) + "\n").encode(), capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    assert json.loads(proc.stdout.splitlines()[0])["id"] == 1


def test_http_bridge_exits_0_on_sigterm(settings: Settings, tmp_path):
    port = _free_port()
    log = tmp_path / "mcp-http.log"
    env = _env(settings, TRADINGD_MCP_HTTP_TOKEN="sigterm-test-token", TRADINGD_MCP_HTTP_PORT=str(port))
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "daemon.cli", "mcp", "--http"], cwd=REPO, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:  # serving once /health answers at all (its status depends on the stack)
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, f"the bridge exited early; log:\n{log.read_text()[-3000:]}"
                assert time.monotonic() < deadline, "the bridge did not serve /health within 30 s"
                time.sleep(0.1)
        code, took = _stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, f"exit status {code}; log:\n{log.read_text()[-3000:]}"
    assert took < 5, took
