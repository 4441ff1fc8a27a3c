"""A pool on a fresh migrated database for the repository tests (no Redis, no worker)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from storage.repos import Db, Pool, transaction
from storage.repos.commands import Commands, NewCommand
from storage.repos.orders import NewOrder, Orders
from storage.repos.records import OrderRecord


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[Pool]:
    p = Pool(database_url, size=2)
    try:
        yield p
    finally:
        await p.close()


def new_command(command_id: str) -> NewCommand:
    return NewCommand(command_id, "place_order", "test", {"command_id": command_id, "symbol": "BTC/USDT"})


async def record_order(db: Db, command_id: str, *, status: str = "submitting", qty: str = "0.01",
                       limit_price: str | None = "59000") -> OrderRecord:
    """A command claimed and its order recorded as submitting, as the order path does."""
    await Commands(db).claim(new_command(command_id))
    now = datetime.now(UTC)
    order, _ = await Orders(db).record_submitting(NewOrder(
        id=f"ord_{command_id}", client_order_id=f"cid_{command_id}", command_id=command_id, venue="paper",
        symbol="BTC/USDT", side="buy", type="limit" if limit_price else "market", time_in_force="gtc",
        qty=Decimal(qty), notional=None, limit_price=Decimal(limit_price) if limit_price else None,
        stop_price=None, status=status, filled_qty=Decimal(0), fees=Decimal(0), schedule_id=None,
        created_at=now, updated_at=now, trail_amount=None, trail_percent=None, replaces=None,
        order_list_id=None, leg=None), audit=[], wait_for_flush=True)
    return order


async def count(pool: Pool, sql: str, *args: object) -> int:
    async with transaction(pool, autocommit=True) as db:
        return int(await db.conn.fetchval(sql, *args))  # type: ignore[attr-defined]
