"""What the DCA deal engine reads of the ledger: the open deals, a deal's orders with their fills
and the commands that placed them, and which deal an order belongs to.

Why here and not in deals.py: these statements join the deals to the order path's tables
(orders, fills, commands); the deal's own record stays the deals repository's. A deal's order is
placed by a command whose id is the deal's client order id ("{deal}:{step}:{attempt}",
jobs/domain/dca/deal_plan.py), and carries orders.deal_id; a command the risk check refused has
no order row, only its command (`commands_by_id` finds it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from sqlalchemy import String, Table, all_, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY, array

from storage.driver import Db
from storage.models import DealRow
from storage.repos.deals import FINAL_DEAL_STATUSES, DealRecord
from storage.repos.records import CommandRecord, FillRecord, OrderRecord, record_of
from storage.tables import COMMANDS, FILLS, ORDERS

DEALS = cast(Table, DealRow.__table__)
_IDS = ARRAY(String)


@dataclass(frozen=True, slots=True)
class DealOrderRecord:
    """One order a deal placed, as the ledger holds it, with its fills (oldest first)."""

    order: OrderRecord
    fills: tuple[FillRecord, ...]


_OPEN_DEALS = (select(DEALS).where(DEALS.c.status != all_(array(sorted(FINAL_DEAL_STATUSES))))
               .order_by(DEALS.c.opened_at, DEALS.c.id))
_ORDERS_OF_DEAL = (select(ORDERS).where(ORDERS.c.deal_id == bindparam("p_deal"))
                   .order_by(ORDERS.c.created_at, ORDERS.c.id))
_FILLS_OF_ORDERS = (select(FILLS).where(FILLS.c.order_id == any_(bindparam("p_ids", type_=_IDS)))
                    .order_by(FILLS.c.ts, FILLS.c.id))
_COMMANDS = select(COMMANDS).where(COMMANDS.c.id == any_(bindparam("p_ids", type_=_IDS)))
_DEAL_OF_ORDER = select(ORDERS.c.deal_id).where(ORDERS.c.client_order_id == bindparam("p_cid"))


class DealLedger:
    def __init__(self, db: Db) -> None:
        self.db = db

    async def open_deals(self) -> list[DealRecord]:
        """Every deal not closed yet (panic_requested included), oldest first."""
        return [record_of(DealRecord, r) for r in await self.db.all(_OPEN_DEALS)]

    async def orders(self, deal_id: str) -> list[DealOrderRecord]:
        """Every order the deal placed, oldest first, each with its fills."""
        orders = [record_of(OrderRecord, r) for r in await self.db.all(_ORDERS_OF_DEAL, {"p_deal": deal_id})]
        if not orders:
            return []
        fills: dict[str, list[FillRecord]] = {o.id: [] for o in orders}
        for r in await self.db.all(_FILLS_OF_ORDERS, {"p_ids": list(fills)}):
            f = record_of(FillRecord, r)
            fills[f.order_id].append(f)
        return [DealOrderRecord(o, tuple(fills[o.id])) for o in orders]

    async def commands(self, command_ids: list[str]) -> dict[str, CommandRecord]:
        """The commands among `command_ids` that were recorded, by id."""
        if not command_ids:
            return {}
        rows = await self.db.all(_COMMANDS, {"p_ids": list(command_ids)})
        return {c.id: c for c in (record_of(CommandRecord, r) for r in rows)}

    async def deal_of_order(self, client_order_id: str) -> str | None:
        """The deal that placed the order with this (venue) client order id; None: not a deal's."""
        return cast(str | None, await self.db.scalar(_DEAL_OF_ORDER, {"p_cid": client_order_id}))
