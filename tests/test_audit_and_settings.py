"""The audit chain catches edits, insertions and deletions; bad settings stop start-up clearly."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from storage import audit
from storage.audit import audit_draft, check_witnessed, recent_audit, verify_chain, write_audit
from storage.db import make_engine, make_sessionmaker
from storage.settings import SettingsError, load_settings
from storage.state.writer import StateWriter
from tests.conftest import TEST_REDIS_URL
from tests.helpers import run_cli, tamper_audit
from tests.session_db import SessionDb


@pytest.fixture
async def sessions(database_url):
    engine = make_engine(database_url, pool_size=4)
    sm = make_sessionmaker(engine)
    async with sm.begin() as s:
        await write_audit(SessionDb(s), [audit_draft(actor="test", action="thing", subject=f"s{i}", payload={"i": i})
                              for i in range(5)])
    yield sm
    await engine.dispose()


async def test_intact_chain_verifies(sessions):
    async with sessions() as s:
        report = await verify_chain(s)
    assert report.ok and report.rows_checked == 5


async def test_update_and_delete_are_refused_by_the_database(sessions):
    async with sessions.begin() as s:
        with pytest.raises(Exception, match="append-only"):
            await s.execute(text("UPDATE audit_log SET actor='x' WHERE seq=2"))


@pytest.mark.parametrize("sql, seq, problem", [
    ("UPDATE audit_log SET payload='{\"i\": 99}' WHERE seq=3", 3, "edited"),
    ("DELETE FROM audit_log WHERE seq=2", 2, "deleted"),
    ("INSERT INTO audit_log (seq, ts, actor, action, subject, payload, prev_hash, hash) "
     "SELECT 6, now(), 'evil', 'thing', 's', '{}', repeat('a', 64), repeat('b', 64)", 6, "edited"),
])
async def test_tampering_is_reported_at_the_first_bad_row(sessions, sql, seq, problem):
    await tamper_audit(sessions, sql)
    async with sessions() as s:
        report = await verify_chain(s)
    assert not report.ok and report.first_bad_seq == seq and report.problem == problem, report


async def test_forged_row_with_valid_hash_but_wrong_link_is_inserted(sessions):
    from datetime import UTC, datetime

    from storage.audit import entry_hash
    ts = datetime.now(UTC)
    h = entry_hash(6, ts, "evil", "thing", "s", {}, "c" * 64)
    await tamper_audit(sessions,
                       "INSERT INTO audit_log (seq, ts, actor, action, subject, payload, prev_hash, hash) "
                       f"VALUES (6, '{ts.isoformat()}', 'evil', 'thing', 's', '{{}}', '{'c' * 64}', '{h}')")
    async with sessions() as s:
        report = await verify_chain(s)
    assert not report.ok and report.first_bad_seq == 6 and report.problem == "inserted", report


@pytest.mark.parametrize("overrides, names", [
    ({"mode": "demo"}, "TRADINGD_MODE"),
    ({"mode": "live"}, "TRADINGD_LIVE_TRADING_OPT_IN"),
    ({"database_url": "mysql://x"}, "TRADINGD_DATABASE_URL"),
    ({"max_order_notional": "-5"}, "TRADINGD_MAX_ORDER_NOTIONAL"),
])
def test_bad_settings_name_the_variable(overrides, names):
    with pytest.raises(SettingsError) as e:
        load_settings(**overrides)
    assert names in str(e.value)


def test_token_value_is_never_echoed():
    with pytest.raises(SettingsError) as e:
        load_settings(mcp_http_token=12345678, mode="nope")
    assert "12345678" not in str(e.value)


async def test_concurrent_writers_form_one_chain(sessions):
    """Many transactions appending at once (several entries each) still form one unbroken chain."""
    async def writer(n: int) -> None:
        async with sessions.begin() as s:
            await write_audit(SessionDb(s), [audit_draft(actor="w", action="thing", subject=f"w{n}", payload={"k": 0})])
            await write_audit(SessionDb(s), [audit_draft(actor="w", action="thing", subject=f"w{n}", payload={"k": k})
                                  for k in (1, 2)])

    await asyncio.gather(*(writer(n) for n in range(12)))
    async with sessions() as s:
        report = await verify_chain(s)
    assert report.ok and report.rows_checked == 5 + 36, report


async def test_a_stale_remembered_head_is_corrected_not_forked(sessions):
    """Another process moved the chain since we last wrote: the database refuses our guess and
    we re-hash from the real head, instead of writing a second row with the same seq."""
    for database in list(audit._last_head):
        audit._last_head[database] = (2, "f" * 64)  # a head that is not the chain's
    async with sessions.begin() as s:
        written = await write_audit(SessionDb(s), [audit_draft(actor="t", action="late", subject="x", payload={})])
    assert written[0].seq == 6
    async with sessions() as s:
        report = await verify_chain(s)
    assert report.ok and report.rows_checked == 6, report


async def _written(sm) -> list[tuple[int, str]]:
    async with sm() as s:
        return [(e.seq, e.hash) for e in await recent_audit(s, 100)]


async def test_deleted_newest_rows_are_caught_by_the_witness_not_by_the_chain(sessions):
    witnessed = await _written(sessions)
    async with sessions() as s:
        assert (await check_witnessed(s, witnessed)).ok
    await tamper_audit(sessions, "DELETE FROM audit_log WHERE seq >= 4")
    async with sessions() as s:
        assert (await verify_chain(s)).ok  # what is left is a valid chain
        report = await check_witnessed(s, witnessed)
    assert not report.ok and report.first_bad_seq == 4 and report.problem == "deleted", report
    assert "ends at row 3" in report.detail


async def test_a_rewritten_and_rehashed_tail_is_caught_by_the_witness(sessions):
    witnessed = await _written(sessions)
    await tamper_audit(sessions, "DELETE FROM audit_log WHERE seq = 5")
    # the forger appends a different row 5 through the real function
    async with sessions.begin() as s:
        forged = audit_draft(actor="forger", action="thing", subject="s4", payload={})
        await write_audit(SessionDb(s), [forged])
    async with sessions() as s:
        assert (await verify_chain(s)).ok
        report = await check_witnessed(s, witnessed)
    assert not report.ok and report.first_bad_seq == 5 and report.problem == "edited", report


async def test_audit_verify_command_reports_deleted_newest_rows(sessions, database_url, redis, tmp_path):
    """`tradingd audit verify` checks the chain, then its tail against the state view's audit feed."""
    async with sessions() as s:
        entries = await recent_audit(s, 100)
    await StateWriter(redis).push_audit(e.as_dict() for e in reversed(entries))  # as effects publish them
    env = {"TRADINGD_DATABASE_URL": database_url, "TRADINGD_REDIS_URL": TEST_REDIS_URL,
           "TRADINGD_AUDIT_ANCHOR_PATH": str(tmp_path / "anchors.jsonl")}  # none: the Redis feed alone
    code, said = await run_cli("audit", "verify", env=env)
    assert code == 0 and "the newest 5 match" in said, said
    await tamper_audit(sessions, "DELETE FROM audit_log WHERE seq = 5")
    code, said = await run_cli("audit", "verify", env=env)
    assert code == 1, said
    assert "row 5" in said and "deleted" in said, said
