"""Audit anchors: the chain head recorded in a file outside Postgres, so a cut or re-hashed tail
still shows after the state view's audit feed (the other witness) is gone."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest
from sqlalchemy import text

from daemon.anchors import AuditAnchorer
from storage.audit import audit_draft, write_audit
from storage.audit_anchor import append_anchor, read_anchors
from storage.db import make_engine, make_sessionmaker
from storage.driver import SessionDb
from tests.conftest import TEST_REDIS_URL


@pytest.fixture
async def sessions(database_url):
    engine = make_engine(database_url, pool_size=2)
    sm = make_sessionmaker(engine)
    yield sm
    await engine.dispose()


async def _append(sm, n: int) -> None:
    async with sm.begin() as s:
        await write_audit(SessionDb(s), [
            audit_draft(actor="test", action="thing", subject=f"s{i}", payload={"i": i}) for i in range(n)])


async def _cut_tail(sm, from_seq: int) -> None:
    async with sm.begin() as s:
        await s.execute(text("ALTER TABLE audit_log DISABLE TRIGGER USER"))
        await s.execute(text(f"DELETE FROM audit_log WHERE seq >= {from_seq}"))
        await s.execute(text("ALTER TABLE audit_log ENABLE TRIGGER USER"))


def test_anchors_are_read_per_database_and_a_torn_last_line_is_skipped(tmp_path):
    path = tmp_path / "anchors.jsonl"
    append_anchor(path, "live", (3, "a" * 64))
    append_anchor(path, "scratch", (9, "b" * 64))
    append_anchor(path, "live", (5, "c" * 64))
    with path.open("ab") as f:
        f.write(b'{"db": "live", "seq": 7, "ha')  # a crash mid-append
    assert read_anchors(path, "live") == [(3, "a" * 64), (5, "c" * 64)]
    assert read_anchors(path, "scratch") == [(9, "b" * 64)]
    assert read_anchors(tmp_path / "none.jsonl", "live") == []


async def test_the_anchorer_appends_the_head_only_when_it_moved(sessions, tmp_path):
    path = tmp_path / "anchors.jsonl"
    anchorer = AuditAnchorer(sessions, path, every_s=3600)
    await anchorer.start()  # an empty log: nothing to anchor
    assert read_anchors(path, anchorer._database) == []
    await _append(sessions, 3)
    assert await anchorer.anchor() is True
    assert await anchorer.anchor() is False  # not moved
    await _append(sessions, 2)
    await anchorer.stop()  # anchors the head as it leaves
    assert [seq for seq, _ in read_anchors(path, anchorer._database)] == [3, 5]
    restarted = AuditAnchorer(sessions, path, every_s=3600)
    await restarted.start()  # remembers the file's last anchor: no duplicate
    await restarted.stop()
    assert [seq for seq, _ in read_anchors(path, anchorer._database)] == [3, 5]


async def test_audit_verify_catches_a_cut_tail_from_the_anchors_with_no_redis_witness(sessions, database_url,
                                                                                       redis, tmp_path):
    path = tmp_path / "anchors.jsonl"
    await _append(sessions, 4)
    anchorer = AuditAnchorer(sessions, path, every_s=3600)
    await anchorer.start()
    await _append(sessions, 2)  # rows 5 and 6: newer than the last anchor
    await anchorer.stop()
    await redis.flushdb()  # the state view's audit feed, the other witness, is gone
    env = {**os.environ, "TRADINGD_DATABASE_URL": database_url, "TRADINGD_REDIS_URL": TEST_REDIS_URL,
           "TRADINGD_AUDIT_ANCHOR_PATH": str(path), "COLUMNS": "300"}
    command = [sys.executable, "-m", "daemon.cli", "audit", "verify"]

    async def verify() -> tuple[int, str]:
        done = await asyncio.to_thread(subprocess.run, command, env=env, capture_output=True, text=True,
                                       timeout=60)
        return done.returncode, done.stdout + done.stderr

    code, said = await verify()
    assert code == 0 and f"anchors in {path}: 2, all match" in said, said
    await _cut_tail(sessions, 5)  # what is left is a valid chain of 4 rows
    code, said = await verify()
    assert code == 1, said
    assert "anchors" in said and "row 6" in said and "deleted" in said and "ends at row 4" in said, said
