"""Typed commands shared by the MCP bridge (which builds them) and the worker (which runs them).

A command's id is its idempotency key: it becomes the arq job id and the basis of the client
order id, so the same command run twice has one effect.
"""

from __future__ import annotations

import unicodedata
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from jobs.domain.orders import (
    MAX_DECIMALS,
    MAX_NOTIONAL,
    MAX_PRICE,
    OrderClass,
    OrderSpec,
    OrderSpecError,
    check_amount,
)
from storage.values import CommandStatus, OrderType, Side, TimeInForce

CommandId = Annotated[str, Field(min_length=1, max_length=160, pattern=r"^[A-Za-z0-9:_\-.]+$")]


def plain_text(value: str) -> str:
    """Refuse control characters (NUL, newlines, escapes) and lone surrogates in free text.

    Why: Postgres text and JSONB cannot hold NUL, and a lone surrogate cannot be encoded as
    UTF-8 at all; such a value used to be acknowledged and then fail in the worker, leaving its
    command unanswered. Refusing them when the command is built keeps that from ever queueing.
    """
    for i, ch in enumerate(value):
        if unicodedata.category(ch) in ("Cc", "Cs"):
            raise ValueError(f"contains a control character ({ch!r} at position {i}); use printable text")
    return value


def _quote_amount(value: Decimal) -> Decimal:
    return _amount("quote_amount", value, MAX_NOTIONAL)


def _max_price(value: Decimal) -> Decimal:
    return _amount("max_price", value, MAX_PRICE)


def _amount(name: str, value: Decimal, limit: Decimal) -> Decimal:
    try:
        check_amount(name, value, limit, max_decimals=MAX_DECIMALS)
    except OrderSpecError as e:
        raise ValueError(str(e)) from None
    return value


# the checks also serve a tool's parameter that becomes one of these fields, so a bad value is refused
# as an argument (naming the parameter) rather than when the tool builds its command
QUOTE_AMOUNT_CHECK = AfterValidator(_quote_amount)
OPTIONAL_PRICE_CHECK = AfterValidator(lambda v: None if v is None else _max_price(v))
PlainText = Annotated[str, AfterValidator(plain_text)]
QuoteAmount = Annotated[Decimal, QUOTE_AMOUNT_CHECK]
MaxPrice = Annotated[Decimal, AfterValidator(_max_price)]


def new_command_id(prefix: str) -> str:
    return f"{prefix}:{uuid.uuid4().hex}"


def _by_kind(commands: Any) -> dict[str, Any]:
    """Each command class of a union by its `kind`: the table its job decodes a queued payload with."""
    return {c.model_fields["kind"].default: c for c in get_args(commands)}


class _Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    command_id: CommandId
    source: str = "mcp"


class OrderFields(BaseModel):
    """An order as given (before rounding to the instrument's increments); previews take this too."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    symbol: PlainText
    side: Side
    type: OrderType
    qty: Decimal | None = None
    notional: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: TimeInForce = "gtc"
    trail_amount: Decimal | None = None
    trail_percent: Decimal | None = None
    order_class: OrderClass = "simple"
    take_profit_price: Decimal | None = None
    stop_loss_price: Decimal | None = None
    stop_loss_limit_price: Decimal | None = None

    def spec(self) -> OrderSpec:
        # by name, not position: the two classes list the same fields, and a field one lacks fails here
        return OrderSpec(**{name: getattr(self, name) for name in OrderFields.model_fields})


class PlaceOrder(OrderFields, _Command):
    kind: Literal["place_order"] = "place_order"
    schedule_id: str | None = None
    deal_id: str | None = None  # the DCA deal that placed it (jobs/bots/deal_orders.py): orders.deal_id


class ReplaceOrder(OrderFields, _Command):
    """Cancel-replace of a resting order: the replacement's full terms (as previewed) and the order
    it replaces. The replacement gets a client order id derived from this command."""

    kind: Literal["replace_order"] = "replace_order"
    order_id: str


class CancelOrder(_Command):
    kind: Literal["cancel_order"] = "cancel_order"
    order_id: str


class CreateDcaSchedule(_Command):
    kind: Literal["create_dca_schedule"] = "create_dca_schedule"
    name: PlainText
    symbol: PlainText
    quote_amount: QuoteAmount
    cron: PlainText | None = None
    interval_s: int | None = None
    misfire_grace_s: int | None = None
    max_price: MaxPrice | None = None


class UpdateDcaSchedule(_Command):
    kind: Literal["update_dca_schedule"] = "update_dca_schedule"
    schedule_id: str
    action: Literal["pause", "resume", "change"]
    name: PlainText | None = None
    quote_amount: QuoteAmount | None = None
    cron: PlainText | None = None
    interval_s: int | None = None
    misfire_grace_s: int | None = None
    max_price: MaxPrice | None = None


class DeleteDcaSchedule(_Command):
    kind: Literal["delete_dca_schedule"] = "delete_dca_schedule"
    schedule_id: str


ScheduleCommand = CreateDcaSchedule | UpdateDcaSchedule | DeleteDcaSchedule
SCHEDULE_COMMANDS: dict[str, type[ScheduleCommand]] = _by_kind(ScheduleCommand)


# DCA bots (jobs/bots/manage.py). A bot's configuration travels as the JSON object BotConfig parses
# (jobs/domain/dca/config.py): the worker parses it again and checks its ladder against each pair's
# instrument, last quote and the venue's balance, so a command queued before a rule changed is
# still judged by the rules in force when it runs.
BotId = Annotated[str, Field(min_length=5, max_length=40, pattern=r"^bot_[A-Za-z0-9]+$")]


class CreateDcaBot(_Command):
    kind: Literal["create_dca_bot"] = "create_dca_bot"
    config: dict[str, Any]


class UpdateBotConfig(_Command):
    """`changes` is merged into the stored configuration (objects field by field, lists replaced)."""

    kind: Literal["update_bot_config"] = "update_bot_config"
    bot_id: BotId
    changes: dict[str, Any] = Field(default_factory=dict)
    rotate_webhook_secret: bool = False


class CloneBot(_Command):
    kind: Literal["clone_bot"] = "clone_bot"
    bot_id: BotId
    name: PlainText
    pairs: list[PlainText] | None = None


class DeleteBot(_Command):
    kind: Literal["delete_bot"] = "delete_bot"
    bot_id: BotId
    panic_sell: bool = False  # with open deals: ask the deal engine to sell them, then delete


class EnableBot(_Command):
    kind: Literal["enable_bot"] = "enable_bot"
    bot_id: BotId


class DisableBot(_Command):
    kind: Literal["disable_bot"] = "disable_bot"
    bot_id: BotId
    reason: PlainText | None = None


class UpdatePairsBlacklist(_Command):
    kind: Literal["update_pairs_blacklist"] = "update_pairs_blacklist"
    action: Literal["add", "remove"]
    pairs: list[PlainText] = Field(min_length=1, max_length=200)
    reason: PlainText | None = None
    venue: PlainText | None = None  # None: each pair's own venue (the registry's routing)


BotCommand = (CreateDcaBot | UpdateBotConfig | CloneBot | DeleteBot | EnableBot | DisableBot
              | UpdatePairsBlacklist)
BOT_COMMANDS: dict[str, type[BotCommand]] = _by_kind(BotCommand)

# A running deal's user actions (3Commas's deal buttons), run by deal_command_job
# (jobs/bots/deal_commands.py) inside the deal's own transaction: each applies once.
DealId = Annotated[str, Field(min_length=6, max_length=40, pattern=r"^deal_[A-Za-z0-9]+$")]


class PanicSellDeal(_Command):
    kind: Literal["panic_sell_deal"] = "panic_sell_deal"
    deal_id: DealId


class CancelDeal(_Command):
    """Cancel the deal's resting orders and stop managing it; what it bought stays on the balance."""

    kind: Literal["cancel_deal"] = "cancel_deal"
    deal_id: DealId


class AddSafetyOrder(_Command):
    """A manual safety order of `volume` quote currency: a limit at `price`, or at market."""

    kind: Literal["add_safety_order"] = "add_safety_order"
    deal_id: DealId
    volume: QuoteAmount
    price: MaxPrice | None = None  # a limit's price; None: at market (the last price sizes it)
    order_type: Literal["limit", "market"] = "limit"


class UpdateDeal(_Command):
    """This deal's take profit (the bot's TakeProfit fields) and/or its maximum of safety orders."""

    kind: Literal["update_deal"] = "update_deal"
    deal_id: DealId
    take_profit: dict[str, Any] | None = None
    max_safety_orders: int | None = Field(default=None, ge=0, le=1000)


DealCommand = PanicSellDeal | CancelDeal | AddSafetyOrder | UpdateDeal
DEAL_COMMANDS: dict[str, type[DealCommand]] = _by_kind(DealCommand)


class BacktestBot(_Command):
    """A bot configuration replayed on 1-minute candles (jobs/backtest/command.py): the bundled
    synthetic sample (`days` of it) or Postgres bars of `symbol` in [start, end)."""

    kind: Literal["backtest_bot"] = "backtest_bot"
    config: dict[str, Any]
    source: Literal["sample", "bars"] = "sample"
    days: int = Field(default=365, ge=1, le=365)
    symbol: PlainText | None = None
    start: datetime | None = None
    end: datetime | None = None


class CompareBacktests(BacktestBot):
    """The same, for each variant: {dotted.field: value} changes to `config` (at most 10)."""

    kind: Literal["compare_backtests"] = "compare_backtests"  # type: ignore[assignment]
    variants: list[dict[str, Any]] = Field(min_length=1, max_length=10)


BACKTEST_COMMANDS: dict[str, type[BacktestBot]] = _by_kind(BacktestBot | CompareBacktests)

AnyCommand = (PlaceOrder | ReplaceOrder | CancelOrder | ScheduleCommand | BotCommand | DealCommand
              | BacktestBot)
JOB_FOR_KIND: dict[str, str] = {
    "place_order": "place_order_job",
    "cancel_order": "cancel_order_job",
    "replace_order": "replace_order_job",
    **{kind: "schedule_command_job" for kind in SCHEDULE_COMMANDS},
    **{kind: "bot_command_job" for kind in BOT_COMMANDS},
    **{kind: "deal_command_job" for kind in DEAL_COMMANDS},
    **{kind: "backtest_command_job" for kind in BACKTEST_COMMANDS},
}


class CommandResult(BaseModel):
    """What a command job returns and what waiting tools read back."""

    command_id: str
    kind: str
    status: CommandStatus
    message: str = ""
    order_id: str | None = None
    schedule_id: str | None = None
    data: dict[str, Any] | None = None
    finished_at: datetime | None = None
