"""A DCA deal's record (jobs/domain/dca/deal_state.Deal) to and from the JSON stored in
`deals.state`, and the typed columns stored beside it.

Why pydantic's TypeAdapter rather than a hand-written mapping: Deal is a tree of frozen
dataclasses (its orders, its ladder and levels, the bot's settings as a pydantic model) with
Decimals, aware datetimes, frozensets and dicts keyed by int; the adapter walks the type hints
both ways, so a field added to Deal is stored without touching this module. Decimals travel as
strings (every digit kept: "0.00971" comes back as Decimal("0.00971")), times as ISO 8601 with
their offset. `SCHEMA_VERSION` is stored with each record so a later change of shape can be
migrated when read.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import TypeAdapter

from jobs.bots.deal_view import deal_figures
from jobs.domain.dca.deal_state import Deal
from jobs.domain.instruments import get_instrument
from storage.repos.deals import DealRecord

SCHEMA_VERSION = 1
_DEAL = TypeAdapter(Deal)


def deal_to_json(deal: Deal) -> dict[str, Any]:
    """The document stored in deals.state (JSON types only)."""
    return {"v": SCHEMA_VERSION, "deal": _DEAL.dump_python(deal, mode="json")}


def deal_from_json(state: dict[str, Any]) -> Deal:
    if state.get("v") != SCHEMA_VERSION:
        raise ValueError(f"deal state version {state.get('v')!r} is not {SCHEMA_VERSION}: no migration known")
    deal = _DEAL.validate_python(state["deal"])
    return _utc(deal)


def _utc(deal: Deal) -> Deal:
    """Times back in datetime.UTC (pydantic hands out its own fixed-offset tzinfo for "Z")."""
    def u(t: datetime | None) -> datetime | None:
        return None if t is None else t.astimezone(UTC)
    return replace(deal, created_at=deal.created_at.astimezone(UTC),
                   updated_at=deal.updated_at.astimezone(UTC), closed_at=u(deal.closed_at),
                   sl_breach_since=u(deal.sl_breach_since))


def stored_state(deal: Deal, venue: str) -> dict[str, Any]:
    """deals.state: the record, and beside it the figures the state view shows of it
    (jobs/bots/deal_view.py; read back by storage/state/deals.py, never by deal_from_json)."""
    return {**deal_to_json(deal), "view": deal_figures(deal, venue, get_instrument(deal.pair))}


def new_record(deal: Deal, venue: str) -> DealRecord:
    """The deals row of a deal just started (the engine saves it before any of its orders)."""
    return DealRecord(id=deal.id, bot_id=deal.bot_id, venue=venue, symbol=deal.pair, side=deal.side,
                      status=deal.status.value, state=stored_state(deal, venue), opened_at=deal.created_at,
                      closed_at=deal.closed_at, profit_quote=_profit(deal), profit_pct=_pct(deal),
                      fees=deal.fees, updated_at=deal.updated_at, version=0)


def updated_record(record: DealRecord, deal: Deal) -> DealRecord:
    """The row with the deal's new state and the columns lists and statistics read (kept in step)."""
    return replace(record, status=deal.status.value, state=stored_state(deal, record.venue),
                   closed_at=deal.closed_at,
                   profit_quote=_profit(deal), profit_pct=_pct(deal), fees=deal.fees,
                   updated_at=deal.updated_at)


def _profit(deal: Deal) -> Decimal | None:
    """Realized profit once the deal sold anything (a deal with no exit yet shows none)."""
    return deal.realized_profit if deal.exit_qty or deal.is_final else None


def _pct(deal: Deal) -> Decimal | None:
    return deal.profit_percent if deal.exit_qty or deal.is_final else None
