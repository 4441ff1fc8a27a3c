"""The commands repository's statements whose semantics the flows rely on: a command recorded once
whatever its repeats, a claim that counts runs, an outcome that a later failure does not replace."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from storage.repos import Pool, transaction
from storage.repos.commands import Commands
from tests.storage.repos.conftest import count, new_command


async def test_recording_the_same_command_twice_keeps_one_row_and_returns_the_stored_one(pool: Pool):
    async with transaction(pool) as db:
        assert await Commands(db).record(new_command("c:1")) is None  # recorded now
    async with transaction(pool) as db:
        again = await Commands(db).record(new_command("c:1"))
    assert again is not None and (again.id, again.status, again.attempts) == ("c:1", "received", 0)
    assert again.payload == {"command_id": "c:1", "symbol": "BTC/USDT"}
    assert await count(pool, "SELECT count(*) FROM commands WHERE id = $1", "c:1") == 1


async def test_a_claim_moves_a_received_command_to_running_and_counts_every_run(pool: Pool):
    async with transaction(pool) as db:
        await Commands(db).record(new_command("c:2"))
    async with transaction(pool) as db:
        first = await Commands(db).claim(new_command("c:2"))
    async with transaction(pool) as db:
        second = await Commands(db).claim(new_command("c:2"))
    assert (first.status, first.attempts) == ("running", 1)
    assert (second.status, second.attempts) == ("running", 2)
    async with transaction(pool) as db:  # a command intake never saw is inserted by its claim
        unseen = await Commands(db).claim(new_command("c:unseen"))
    assert (unseen.status, unseen.attempts) == ("running", 1)


async def test_a_failure_never_replaces_a_final_outcome(pool: Pool):
    now = datetime.now(UTC)
    async with transaction(pool) as db:
        await Commands(db).claim(new_command("c:3"))
        done = await Commands(db).finish("c:3", "succeeded", {"message": "order filled"}, None, now)
    assert done is not None and done.status == "succeeded"
    async with transaction(pool) as db:
        failed = await Commands(db).fail(new_command("c:3"), "failed", {"message": "boom"}, "boom", now)
        stored = await Commands(db).get("c:3")
    assert failed is None
    assert (stored.status, stored.result) == ("succeeded", {"message": "order filled"})


async def test_a_failure_is_recorded_even_for_an_unclaimed_command_with_an_unstorable_payload(pool: Pool):
    bad = new_command("c:4")
    bad = type(bad)(bad.id, bad.kind, bad.source, {"note": "nul \x00 in text"})  # JSONB cannot hold NUL
    async with transaction(pool) as db:
        failed = await Commands(db).fail(bad, "failed", {"message": "internal error"}, "internal error",
                                         datetime.now(UTC))
    assert failed is not None and (failed.status, failed.payload) == ("failed", {"unstorable": True})


async def test_finishing_an_unknown_command_returns_none(pool: Pool):
    async with transaction(pool) as db:
        finished = await Commands(db).finish("c:none", "rejected", {"message": "x"}, "x", datetime.now(UTC))
    assert finished is None


async def test_unfinished_lists_received_and_running_commands_last_changed_before_the_cutoff(pool: Pool):
    now = datetime.now(UTC)
    async with transaction(pool) as db:
        await Commands(db).record(new_command("c:received"))
        await Commands(db).claim(new_command("c:running"))
        await Commands(db).claim(new_command("c:done"))
        await Commands(db).finish("c:done", "succeeded", {"message": "ok"}, None, now - timedelta(hours=1))
    async with transaction(pool) as db:
        listed = await Commands(db).unfinished(datetime.now(UTC) + timedelta(seconds=1))
        none_yet = await Commands(db).unfinished(now - timedelta(minutes=5))
    assert sorted(c.id for c in listed) == ["c:received", "c:running"]
    assert none_yet == []
