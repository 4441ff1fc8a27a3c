"""SIGTERM to the daemon and the worker, run as separate processes, leaves no half-written effects.

Why: in production (docker compose, systemd) both processes are stopped with SIGTERM while
commands are flowing. Each must exit by itself with status 0; the worker must finish the jobs it
started and leave the rest queued; a restarted worker must then bring every command to a final
outcome with each effect booked exactly once. Only real processes exercise the signal handling
in daemon/cli.py, the process exit, and arq's re-run of interrupted jobs, so nothing is mocked.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from jobs.commands import PlaceOrder
from jobs.queue import FINAL_COMMAND_STATUSES, CommandQueue
from storage.audit import verify_chain
from storage.models import AuditRow, BalanceRow, CommandRow, FillRow, OrderRow, PositionRow
from storage.settings import Settings
from storage.state.reader import StateReader
from tests.stack import Processes, command_queue, eventually

Sessions = async_sessionmaker[AsyncSession]
SYMBOL = "BTC/USDT"
QTY = Decimal("0.001")
N_COMMANDS = 40
BIG_BURST = 12


@pytest.fixture
def procs(settings: Settings, tmp_path: Path) -> Iterator[Processes]:
    with Processes(settings, tmp_path) as p:
        yield p


@pytest.fixture
async def queue(settings: Settings) -> AsyncIterator[CommandQueue]:
    async with command_queue(settings) as q:
        yield q


async def _statuses(sessions: Sessions, ids: list[str]) -> dict[str, str]:
    async with sessions() as s:
        rows = await s.execute(select(CommandRow.id, CommandRow.status).where(CommandRow.id.in_(ids)))
        return {cid: status for cid, status in rows}


async def _n_final(sessions: Sessions, ids: list[str]) -> int:
    return sum(st in FINAL_COMMAND_STATUSES for st in (await _statuses(sessions, ids)).values())


async def _sigterm_mid_stream(procs: Processes, queue: CommandQueue, sessions: Sessions, ids: list[str],
                              victims: list[subprocess.Popen[bytes]]) -> None:
    """Enqueue `ids` as a steady stream of market buys (bursts of 4, without waiting for results).

    Once a few commands are done, a bigger burst goes in and `victims` get SIGTERM right after it:
    the worker is then claiming and starting jobs as the signal lands. The stream goes on after
    the signal: those commands must wait in the queue, not be lost.
    """
    i, signalled_at, signal_time, final_at_signal = 0, None, 0.0, 0
    reserve = BIG_BURST + 8  # ids kept for the burst at the signal and the stream after it
    give_up_at = asyncio.get_running_loop().time() + 20
    while i < len(ids):
        signal_now = signalled_at is None and await _n_final(sessions, ids) >= 4
        if signalled_at is None and not signal_now and i >= len(ids) - reserve:
            # a slow (or busy) machine: hold the stream until the first results are in
            assert asyncio.get_running_loop().time() < give_up_at, "no command finished within 20 s"
            await asyncio.sleep(0.05)
            continue
        for cid in ids[i:i + (BIG_BURST if signal_now else 4)]:
            await queue.enqueue(PlaceOrder(command_id=cid, symbol=SYMBOL, side="buy", type="market", qty=QTY,
                                           source="test"))
            i += 1
        if signal_now:
            for p in victims:
                p.send_signal(signal.SIGTERM)
            signalled_at, signal_time = i, asyncio.get_running_loop().time()
            final_at_signal = await _n_final(sessions, ids)
        await asyncio.sleep(0.05)
    assert signalled_at is not None and signalled_at < len(ids), "the signal was not sent mid-stream"
    codes = {procs.name(p): await procs.wait_exit(p, signal_time) for p in victims}
    assert all(code == 0 for code in codes.values()), f"not a clean exit on SIGTERM: {codes}"
    # the signal landed while jobs ran (else this tests an idle stop): they finished before the exit
    assert await _n_final(sessions, ids) > final_at_signal, "no job was in flight when SIGTERM landed"


async def _assert_nothing_half_done(sessions: Sessions, ids: list[str]) -> None:
    """A graceful stop finishes the jobs it started: no command left running, no order in flight."""
    async with sessions() as s:
        running = (await s.execute(select(CommandRow.id, CommandRow.status).where(
            CommandRow.id.in_(ids), CommandRow.status.not_in(FINAL_COMMAND_STATUSES)))).all()
        in_flight = (await s.execute(select(OrderRow.id, OrderRow.status).where(
            OrderRow.command_id.in_(ids), OrderRow.status.in_(("submitting", "unknown"))))).all()
    assert not running and not in_flight, (
        f"SIGTERM left work half done: commands {running}, orders {in_flight}")


async def _assert_books_consistent(settings: Settings, redis: Redis, sessions: Sessions,
                                   ids: list[str]) -> None:
    """Every command final and applied exactly once: orders, fills, position, balances, audit."""
    statuses = await _statuses(sessions, ids)
    assert sorted(statuses) == sorted(ids), f"commands never recorded: {sorted(set(ids) - set(statuses))}"
    # the daemon publishes fresh quotes throughout and the account is well funded: all must succeed
    assert set(statuses.values()) == {"succeeded"}, statuses
    async with sessions() as s:
        cmds = {c.id: c for c in (await s.scalars(select(CommandRow).where(CommandRow.id.in_(ids))))}
        orders = (await s.execute(select(OrderRow))).scalars().all()
        fills = (await s.execute(select(FillRow))).scalars().all()
        position = await s.get(PositionRow, ("paper", SYMBOL))
        usdt = await s.get(BalanceRow, ("paper", "USDT"))
        btc = await s.get(BalanceRow, ("paper", "BTC"))
        audit_actions = list((await s.execute(select(AuditRow.action))).scalars())
        chain = await verify_chain(s)
        n_orders_by_command = dict((await s.execute(
            select(OrderRow.command_id, func.count()).group_by(OrderRow.command_id))).all())

    # exactly one order per command, and it is the one the command reports
    assert n_orders_by_command == {cid: 1 for cid in ids}, n_orders_by_command
    by_command = {o.command_id: o for o in orders}
    for cid in ids:
        assert cmds[cid].result and cmds[cid].result.get("order_id") == by_command[cid].id, cmds[cid].result
    # every order filled, with its fills, counted once
    fills_of: dict[str, list[FillRow]] = {}
    for f in fills:
        fills_of.setdefault(f.order_id, []).append(f)
    assert set(fills_of) <= {o.id for o in orders}, "fills of no order"
    for o in orders:
        of = fills_of.get(o.id, [])
        assert o.status == "filled" and of, f"order {o.id} is {o.status} with {len(of)} fills"
        assert o.qty == o.filled_qty == sum(f.qty for f in of) == QTY, (o.id, o.qty, o.filled_qty)
        assert o.fees == sum(f.fee for f in of), (o.id, o.fees)
    bought = sum((f.qty for f in fills), Decimal(0))
    spent = sum((f.qty * f.price + f.fee for f in fills), Decimal(0))
    assert bought == QTY * len(ids)
    assert position is not None and position.qty == bought, (position and position.qty, bought)
    assert btc is not None and btc.total == bought
    start = settings.paper_starting_balances["USDT"]
    assert usdt is not None and usdt.total == start - spent and usdt.locked == 0, (usdt, start, spent)
    # the audit log: intact, and each effect recorded once
    assert chain.ok, chain
    assert audit_actions.count("fill") == len(fills)
    assert audit_actions.count("order.submitting") == len(orders)
    assert audit_actions.count("command.succeeded") == len(ids)
    # what clients read (the Redis state view) agrees
    reader = StateReader(redis)
    views = {cid: await reader.command(cid) for cid in ids}
    assert all(v is not None and v.status == "succeeded" for v in views.values()), {
        cid: v and v.status for cid, v in views.items() if v is None or v.status != "succeeded"}
    positions = {p.symbol: p.qty for p in await reader.positions()}
    assert positions.get(SYMBOL) == bought, positions


async def _wait_drained(settings: Settings, redis: Redis, sessions: Sessions, ids: list[str],
                        within: float = 15) -> None:
    """Every command final in Postgres; if not, say where the others are stuck in arq's queue."""
    async def drained() -> bool:
        return await _n_final(sessions, ids) == len(ids)
    try:
        await eventually(drained, timeout=within)
    except AssertionError:
        statuses = await _statuses(sessions, ids)
        stuck = {}
        for cid in ids:
            if statuses.get(cid) not in FINAL_COMMAND_STATUSES:
                stuck[cid] = {"status": statuses.get(cid),
                              "queued": await redis.zscore(settings.queue_name, cid),
                              "in_progress_ttl_ms": await redis.pttl(f"arq:in-progress:{cid}"),
                              "job": bool(await redis.exists(f"arq:job:{cid}")),
                              "tries": await redis.get(f"arq:retry:{cid}")}
        raise AssertionError(f"not drained within {within}s: {stuck}") from None


async def test_sigterm_worker_mid_stream(settings, redis, procs, queue, sessions):
    """The worker alone is stopped mid-stream (a worker redeploy); the daemon stays up."""
    ids = [f"sigterm:w:{i:02d}:{uuid.uuid4().hex[:6]}" for i in range(N_COMMANDS)]
    daemon, worker = await procs.up(redis, "daemon", "worker", quote=SYMBOL)

    await _sigterm_mid_stream(procs, queue, sessions, ids, [worker])
    await _assert_nothing_half_done(sessions, ids)

    (worker2,) = await procs.up(redis, "worker")  # arq is at-least-once: what was left queued runs now
    await _wait_drained(settings, redis, sessions, ids)
    await _assert_books_consistent(settings, redis, sessions, ids)
    for p in (daemon, worker2):
        assert await procs.sigterm_and_wait(p) == 0, procs.name(p)


async def test_sigterm_daemon_and_worker_together_mid_stream(settings, redis, procs, queue, sessions):
    """Both processes are stopped at once mid-stream (`docker compose down`), then both restarted."""
    ids = [f"sigterm:dw:{i:02d}:{uuid.uuid4().hex[:6]}" for i in range(N_COMMANDS)]
    daemon, worker = await procs.up(redis, "daemon", "worker", quote=SYMBOL)

    await _sigterm_mid_stream(procs, queue, sessions, ids, [daemon, worker])
    await _assert_nothing_half_done(sessions, ids)

    # the daemon first, as an operator would; its start-up rebuild settles against the worker's
    # publishing anyway (storage/state/rebuild.py), so the order matters less than it did
    (daemon2,) = await procs.up(redis, "daemon", quote=SYMBOL)
    (worker2,) = await procs.up(redis, "worker")
    await _wait_drained(settings, redis, sessions, ids)
    await _assert_books_consistent(settings, redis, sessions, ids)
    for p in (daemon2, worker2):
        assert await procs.sigterm_and_wait(p) == 0, procs.name(p)
