"""The orders repository: recording an order before its venue call, finding it again, and marking
its outcome open when the venue does not answer (table `orders`; fills and the booking of a
venue's report: storage/repos/ledger.py).

Two statements here merge what would be several round trips, because they sit on every order:
- `claim_for_order`: the command's claim (storage/repos/commands.py) with what the risk check
  reads (the trading state, both assets' free balance), one round trip;
- `record_submitting`: the order's insert with its audit entries (storage/audit.py) and the
  transaction's commit policy: `wait_for_flush=False` lets the transaction commit without
  waiting for the WAL flush (jobs/record_durability.py says when that is safe, and why).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, String, any_, bindparam, column, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import array

from storage.audit import AUDIT_APPEND_SELECT, AuditDraft, AuditEntry, CarriedAudit
from storage.driver import Db
from storage.repos.commands import CLAIM, NewCommand
from storage.repos.records import CommandRecord, OrderRecord, record_of
from storage.tables import BALANCES, CONTROL, ORDERS
from storage.values import OPEN_ORDER_STATUSES


@dataclass(frozen=True, slots=True)
class RiskInputs:
    """What the risk check reads from Postgres: the trading state and the free balances."""

    trading_state: str | None  # None: no control row (the check then assumes ACTIVE, as before)
    free_quote: Decimal | None  # None: no balance row for the asset
    free_base: Decimal | None


@dataclass(frozen=True, slots=True)
class NewOrder:
    """An order as recorded before its venue call ("submitting")."""

    id: str
    client_order_id: str
    command_id: str
    venue: str
    symbol: str
    side: str
    type: str
    time_in_force: str
    qty: Decimal | None
    notional: Decimal | None
    limit_price: Decimal | None
    stop_price: Decimal | None
    status: str
    filled_qty: Decimal
    fees: Decimal
    schedule_id: str | None
    created_at: datetime
    updated_at: datetime
    trail_amount: Decimal | None
    trail_percent: Decimal | None
    replaces: str | None
    order_list_id: str | None
    leg: str | None
    deal_id: str | None = None  # the DCA deal that placed it (deals.id)


_NEW_ORDER_COLUMNS = tuple(f for f in NewOrder.__dataclass_fields__)


def _available(asset_param: str) -> Any:
    return (select(BALANCES.c.total - BALANCES.c.locked)
            .where(BALANCES.c.venue == bindparam("p_venue"), BALANCES.c.asset == bindparam(asset_param))
            .scalar_subquery())


_claimed = CLAIM.cte("claimed")
_CLAIM_WITH_RISK_INPUTS = select(
    _claimed, select(CONTROL.c.state).where(CONTROL.c.id == 1).scalar_subquery().label("trading_state"),
    _available("p_quote").label("free_quote"), _available("p_base").label("free_base"))
_new_order = (insert(ORDERS)
              .values({name: bindparam(name, type_=ORDERS.c[name].type) for name in _NEW_ORDER_COLUMNS})
              .returning(*ORDERS.c).cte("new_order"))
_order_audit = (text(AUDIT_APPEND_SELECT.format(gate="true"))
                .columns(column("head_seq", BigInteger), column("head_hash", String)).cte("audit"))
_commit_wait = func.set_config("synchronous_commit", bindparam("p_commit_wait", type_=String), True)
_INSERT_ORDER = select(_new_order, select(_order_audit.c.head_seq).scalar_subquery().label("audit_head_seq"),
                       select(_order_audit.c.head_hash).scalar_subquery().label("audit_head_hash"),
                       select(_commit_wait).scalar_subquery().label("commit_wait"))
# the order a command placed: of an OCO's or bracket's legs, the first (its client order id is the list's)
_ORDER_OF_COMMAND = (select(ORDERS).where(ORDERS.c.command_id == bindparam("p_id"))
                     .order_by(ORDERS.c.order_list_id.is_(None).desc(),
                               (ORDERS.c.client_order_id == ORDERS.c.order_list_id).desc())
                     .limit(1))
_OPEN = any_(array(sorted(OPEN_ORDER_STATUSES)))
_LEGS = (select(ORDERS).where(ORDERS.c.order_list_id == bindparam("p_list"))
         .order_by(ORDERS.c.created_at, ORDERS.c.id))
_OPEN_LEGS = _LEGS.where(ORDERS.c.status == _OPEN)
_ORDER_BY_CLIENT_ID = select(ORDERS).where(ORDERS.c.client_order_id == bindparam("p_id"))
_ORDER = select(ORDERS).where(ORDERS.c.id == bindparam("p_id"))
_OPEN_ORDERS = select(ORDERS.c.client_order_id).where(ORDERS.c.status == _OPEN)
_OPEN_ORDERS_OF_COMMAND = select(func.count()).select_from(ORDERS).where(
    ORDERS.c.command_id == bindparam("p_id"), ORDERS.c.status == _OPEN)
# only an order still waiting for its venue's answer: one the venue's own update has booked
# meanwhile (a fill from the user stream that came before the lost reply) stays as booked
_ORDER_UNKNOWN = (update(ORDERS).where(ORDERS.c.id == bindparam("p_id"),
                                       ORDERS.c.status == any_(array(["submitting", "unknown"])))
                  .values(status="unknown", updated_at=bindparam("p_ts"), version=ORDERS.c.version + 1)
                  .returning(*ORDERS.c))


def _order(row: Any) -> OrderRecord:
    return record_of(OrderRecord, row)


class Orders:
    def __init__(self, db: Db) -> None:
        self.db = db

    async def claim_for_order(self, new: NewCommand, *, venue: str, quote_asset: str,
                              base_asset: str) -> tuple[CommandRecord, RiskInputs]:
        """Claim the command (Commands.claim) and read the risk check's inputs, in one round trip."""
        row = await self.db.one(_CLAIM_WITH_RISK_INPUTS, {**new.params(), "p_venue": venue,
                                                          "p_quote": quote_asset, "p_base": base_asset})
        return (record_of(CommandRecord, row),
                RiskInputs(row["trading_state"], row["free_quote"], row["free_base"]))

    async def record_submitting(self, new: NewOrder, *, audit: list[AuditDraft],
                                wait_for_flush: bool) -> tuple[OrderRecord, list[AuditEntry]]:
        """Insert the order with its audit entries (`audit`, chained here); returns the order as
        stored and the entries as written. `wait_for_flush=False`: this transaction commits
        without waiting for the WAL flush (see the module docstring)."""
        carried = CarriedAudit.of(self.db, audit)
        row = await self.db.one(_INSERT_ORDER, {
            **{name: getattr(new, name) for name in _NEW_ORDER_COLUMNS},
            "p_commit_wait": "on" if wait_for_flush else "off", **carried.params})
        written = await carried.settle(self.db, row, went_in=True, drafts=audit)
        return _order(row), written

    async def of_command(self, command_id: str) -> OrderRecord | None:
        """The order a command placed (of an OCO's or bracket's legs, the first)."""
        row = await self.db.first(_ORDER_OF_COMMAND, {"p_id": command_id})
        return None if row is None else _order(row)

    async def get(self, order_id: str) -> OrderRecord | None:
        row = await self.db.first(_ORDER, {"p_id": order_id})
        return None if row is None else _order(row)

    async def by_client_order_id(self, client_order_id: str) -> OrderRecord:
        return _order(await self.db.one(_ORDER_BY_CLIENT_ID, {"p_id": client_order_id}))

    async def legs(self, order_list_id: str, *, open_only: bool = False) -> list[OrderRecord]:
        """The legs of an OCO or bracket in the order they were recorded (only those we believe open)."""
        rows = await self.db.all(_OPEN_LEGS if open_only else _LEGS, {"p_list": order_list_id})
        return [_order(r) for r in rows]

    async def open_client_order_ids(self) -> list[str]:
        """The client order ids of every order we believe open (what reconciliation asks about)."""
        return [r[0] for r in await self.db.all(_OPEN_ORDERS)]

    async def command_has_open_order(self, command_id: str) -> bool:
        return bool(await self.db.scalar(_OPEN_ORDERS_OF_COMMAND, {"p_id": command_id}))

    async def mark_unknown(self, order_id: str, ts: datetime) -> OrderRecord | None:
        """The venue did not answer about the order: its outcome is open until reconciled. None:
        the order is no longer waiting (its outcome was booked another way), nothing changed."""
        row = await self.db.first(_ORDER_UNKNOWN, {"p_id": order_id, "p_ts": ts})
        return None if row is None else _order(row)
