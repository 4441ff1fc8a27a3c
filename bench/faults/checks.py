"""What must hold after each fault, read straight from Postgres (not through the proxy) and from
the Redis view's raw keys (not through the reader, so a reader that refuses to answer while the
view rebuilds does not hide what the view holds).

- lost: an acknowledged command with no command row once the settle deadline passed;
- stuck: an acknowledged command whose row is still not final (received, running, unknown);
- duplicates: more than one order per command or client order id, a fill booked twice, or the
  ledger disagreeing with the paper venue's own book (its fills, and the balances they imply);
- view_diffs: orders, balances and positions the Redis view shows differently from Postgres;
- audit: the hash chain verifies.

Each finding is a key in a set, so the suite can report the union over all faults without
counting one lost command once per fault that followed it.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import asyncpg
import orjson
from redis.asyncio import Redis

from jobs.domain.instruments import get_instrument
from jobs.domain.portfolio import balance_deltas
from storage.audit import verify_chain
from storage.db import make_engine, make_sessionmaker
from storage.state import keys
from storage.values import FINAL_COMMAND_STATUSES, FINAL_ORDER_STATUSES


@dataclass
class Findings:
    lost: set[str] = field(default_factory=set)
    stuck: set[str] = field(default_factory=set)
    duplicates: set[str] = field(default_factory=set)
    view_diffs: set[str] = field(default_factory=set)
    audit_problem: str | None = None
    settle_s: float = 0.0

    def merge(self, other: Findings) -> None:
        """The union: a later phase can add findings, never clear an earlier one's."""
        self.lost |= other.lost
        self.stuck |= other.stuck
        self.duplicates |= other.duplicates
        self.view_diffs |= other.view_diffs
        self.audit_problem = self.audit_problem or other.audit_problem

    @property
    def ok(self) -> bool:
        return not (self.lost or self.stuck or self.duplicates or self.view_diffs or self.audit_problem)

    def summary(self) -> str:
        def show(s: set[str]) -> str:
            return f"{len(s)}" + (f" {sorted(s)[:4]}" if s else "")
        audit = self.audit_problem or "ok"
        return (f"lost={show(self.lost)} stuck={show(self.stuck)} duplicates={show(self.duplicates)} "
                f"view_diffs={show(self.view_diffs)} audit={audit} settled_in={self.settle_s:.1f}s")


def _dsn(database_url: str) -> str:
    return database_url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def command_statuses(database_url: str, ids: list[str]) -> dict[str, str]:
    conn = await asyncpg.connect(_dsn(database_url))
    try:
        rows = await conn.fetch("SELECT id, status FROM commands WHERE id = ANY($1::varchar[])", ids)
    finally:
        await conn.close()
    return {r["id"]: r["status"] for r in rows}


async def settle(database_url: str, ids: list[str], within: float) -> tuple[set[str], set[str], float]:
    """Wait (bounded) until every command in `ids` is final: (lost, stuck, seconds waited)."""
    t0 = time.monotonic()
    while True:
        statuses = await command_statuses(database_url, ids)
        lost = {c for c in ids if c not in statuses}
        stuck = {c for c, s in statuses.items() if s not in FINAL_COMMAND_STATUSES}
        if not (lost or stuck) or time.monotonic() - t0 > within:
            return lost, stuck, time.monotonic() - t0
        await asyncio.sleep(0.25)


async def ledger_vs_book(conn: asyncpg.Connection, starting: dict[str, Decimal]) -> set[str]:
    """Duplicated orders or fills, and every way the ledger and the paper venue's book disagree."""
    found: set[str] = set()
    for label, sql in (
        ("orders-per-command", "SELECT command_id FROM orders GROUP BY command_id HAVING count(*) > 1"),
        ("orders-per-client-id",
         "SELECT client_order_id FROM orders GROUP BY client_order_id HAVING count(*) > 1"),
        ("fill-twice", "SELECT venue_fill_id FROM fills GROUP BY venue, venue_fill_id HAVING count(*) > 1"),
    ):
        found |= {f"{label}:{r[0]}" for r in await conn.fetch(sql)}
    # every fill the ledger booked is one the venue made, once, with the same amounts; and back
    rows = await conn.fetch("""
        SELECT coalesce(f.venue_fill_id, p.fill_id) AS fill_id, f.qty AS ledger_qty, p.qty AS book_qty,
               f.price AS ledger_price, p.price AS book_price, f.fee AS ledger_fee, p.fee AS book_fee
        FROM (SELECT * FROM fills WHERE venue = 'paper') f
        FULL OUTER JOIN paper_fills p ON p.fill_id = f.venue_fill_id
        WHERE f.id IS NULL OR p.fill_id IS NULL OR f.qty <> p.qty OR f.price <> p.price OR f.fee <> p.fee""")
    for r in rows:
        where = ("book-only" if r["ledger_qty"] is None else "ledger-only" if r["book_qty"] is None
                 else "differs")
        found.add(f"fill-{where}:{r['fill_id']}")
    # balances: the starting balances moved by every fill the venue's book holds
    expected: dict[str, Decimal] = defaultdict(Decimal, starting)
    for r in await conn.fetch("""SELECT o.symbol, o.side, f.qty, f.price, f.fee FROM paper_fills f
                                 JOIN paper_orders o USING (client_order_id)"""):
        inst = get_instrument(r["symbol"])
        moves = balance_deltas(r["side"], inst.base, inst.quote, r["qty"], r["price"], r["fee"])
        for asset, delta in moves.items():
            expected[asset] += delta
    rows = await conn.fetch("SELECT asset, total FROM balances WHERE venue = 'paper'")
    booked = {r["asset"]: r["total"] for r in rows}
    for asset in set(expected) | set(booked):
        if expected.get(asset, Decimal(0)) != booked.get(asset, Decimal(0)):
            found.add(f"balance:{asset}:ledger={booked.get(asset)}:book={expected.get(asset)}")
    return found


def _dec(v: Any) -> Decimal | None:
    return None if v is None else Decimal(str(v))


async def view_vs_postgres(conn: asyncpg.Connection, redis: Redis) -> set[str]:
    """Orders, balances and positions whose view record is missing, extra or different."""
    diffs: set[str] = set()
    orders = await conn.fetch("SELECT id, client_order_id, status, filled_qty, fees, version FROM orders")
    raws = await redis.mget([keys.order(r["id"]) for r in orders]) if orders else []
    for row, raw in zip(orders, raws, strict=True):
        if raw is None:
            diffs.add(f"order-missing:{row['id']}")
            continue
        v = orjson.loads(raw)
        seen = (v["status"], _dec(v["filled_qty"]), _dec(v["fees"]))
        if seen != (row["status"], row["filled_qty"], row["fees"]):
            diffs.add(f"order:{row['id']}:view={v['status']}/{v['filled_qty']}:"
                      f"pg={row['status']}/{row['filled_qty']}")
    listed = {m.decode() for m in await redis.zrange(keys.ORDERS_BY_TIME, 0, -1)}
    diffs |= {f"order-unlisted:{r['id']}" for r in orders if r["id"] not in listed}
    diffs |= {f"order-extra:{i}" for i in listed - {r["id"] for r in orders}}
    # the indexes list_orders(status='open') and get_order('td-...') read
    shown_open = {m.decode() for m in await redis.smembers(keys.ORDERS_OPEN)}
    is_open = {r["id"] for r in orders if r["status"] not in FINAL_ORDER_STATUSES}
    diffs |= {f"order-open-index:{i}" for i in shown_open ^ is_open}
    by_cid = {k.decode(): v.decode() for k, v in (await redis.hgetall(keys.ORDERS_BY_CLIENT_ID)).items()}
    diffs |= {f"order-cid-index:{r['id']}" for r in orders if by_cid.get(r["client_order_id"]) != r["id"]}

    for name, sql, hash_key, fields in (
        ("balance", "SELECT venue || '|' || asset AS k, total, locked FROM balances", keys.BALANCES,
         ("total", "locked")),
        ("position", "SELECT venue || '|' || symbol AS k, qty, avg_price FROM positions", keys.POSITIONS,
         ("qty", "avg_price")),
    ):
        pg = {r["k"]: r for r in await conn.fetch(sql)}
        view = {k.decode(): orjson.loads(v) for k, v in (await redis.hgetall(hash_key)).items()}
        for k in set(pg) | set(view):
            if k not in view:
                diffs.add(f"{name}-missing:{k}")
            elif k not in pg:
                diffs.add(f"{name}-extra:{k}")
            elif any(_dec(view[k][f]) != pg[k][f] for f in fields):
                shown, stored = [view[k][f] for f in fields], [str(pg[k][f]) for f in fields]
                diffs.add(f"{name}:{k}:view={shown}:pg={stored}")
    return diffs


async def audit_problem(database_url: str) -> str | None:
    engine = make_engine(database_url, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session:
            report = await verify_chain(session)
    finally:
        await engine.dispose()
    return None if report.ok else f"{report.problem} at seq {report.first_bad_seq}: {report.detail}"


async def check(database_url: str, redis: Redis, acknowledged: list[str], *, starting: dict[str, Decimal],
                settle_within: float, quiet_within: float = 10.0) -> Findings:
    """Settle the acknowledged commands, then compare ledger, book and view until they agree or
    `quiet_within` passes (resting orders may fill, and their publish follows the commit)."""
    lost, stuck, waited = await settle(database_url, acknowledged, settle_within)
    found = Findings(lost=lost, stuck=stuck, settle_s=waited)
    deadline = time.monotonic() + quiet_within
    conn = await asyncpg.connect(_dsn(database_url))
    try:
        while True:
            try:
                dups = await ledger_vs_book(conn, starting)
                diffs = await view_vs_postgres(conn, redis)
            except Exception as e:  # Redis still coming back: a view that cannot be read differs
                dups, diffs = set(), {f"view-unreadable:{type(e).__name__}"}
            if not (dups or diffs) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
    finally:
        await conn.close()
    found.duplicates, found.view_diffs = dups, diffs
    found.audit_problem = await audit_problem(database_url)
    return found
