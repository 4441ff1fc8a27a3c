"""Audit anchors: the chain head recorded in a file outside Postgres, so a cut or re-hashed tail
still shows after the state view's audit feed (the other witness) is gone."""

from __future__ import annotations

from daemon.anchors import AuditAnchorer
from storage.audit import audit_draft, write_audit
from storage.audit_anchor import ChainHeads, append_anchor, read_anchors
from tests.conftest import TEST_REDIS_URL
from tests.helpers import run_cli, tamper_audit
from tests.session_db import SessionDb


async def _append(sm, n: int) -> None:
    async with sm.begin() as s:
        await write_audit(SessionDb(s), [
            audit_draft(actor="test", action="thing", subject=f"s{i}", payload={"i": i}) for i in range(n)])


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


async def test_the_anchorer_appends_the_head_when_it_moved(sessions, database_url, tmp_path):
    path = tmp_path / "anchors.jsonl"
    database = database_url.rsplit("/", 1)[1]  # anchors are kept under the database's name
    anchorer = AuditAnchorer(ChainHeads(sessions), path, every_s=3600)
    await anchorer.start()  # an empty log: nothing to anchor
    assert not path.exists()
    await _append(sessions, 3)
    assert await anchorer.anchor() is True
    assert await anchorer.anchor() is False  # not moved
    await _append(sessions, 2)
    await anchorer.stop()  # anchors the head as it leaves
    assert [seq for seq, _ in read_anchors(path, database)] == [3, 5]
    restarted = AuditAnchorer(ChainHeads(sessions), path, every_s=3600)
    await restarted.start()  # a restart anchors the head once more, then only when it moves
    await restarted.stop()
    assert [seq for seq, _ in read_anchors(path, database)] == [3, 5, 5]


async def test_audit_verify_catches_a_cut_tail_from_the_anchors_with_no_redis_witness(sessions, database_url,
                                                                                       redis, tmp_path):
    path = tmp_path / "anchors.jsonl"
    await _append(sessions, 4)
    anchorer = AuditAnchorer(ChainHeads(sessions), path, every_s=3600)
    await anchorer.start()
    await _append(sessions, 2)  # rows 5 and 6: newer than the last anchor
    await anchorer.stop()
    await redis.flushdb()  # the state view's audit feed, the other witness, is gone
    env = {"TRADINGD_DATABASE_URL": database_url, "TRADINGD_REDIS_URL": TEST_REDIS_URL,
           "TRADINGD_AUDIT_ANCHOR_PATH": str(path)}

    code, said = await run_cli("audit", "verify", env=env)
    assert code == 0 and f"anchors in {path}: 2, all match" in said, said
    await tamper_audit(sessions, "DELETE FROM audit_log WHERE seq >= 5")  # a valid chain of 4 rows is left
    code, said = await run_cli("audit", "verify", env=env)
    assert code == 1, said
    assert "anchors" in said and "row 6" in said and "deleted" in said and "ends at row 4" in said, said
