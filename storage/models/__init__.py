"""ORM models, one module per aggregate; importing this package registers them all on Base.metadata."""

from storage.models.audit import AuditRow
from storage.models.bars import BarRow
from storage.models.base import Base
from storage.models.bots import BotRow, BotSignalRow, DealRow, PairsBlacklistRow
from storage.models.commands import CommandRow
from storage.models.control import TradingControlRow
from storage.models.orders import FillRow, OrderRow
from storage.models.paper_book import PaperFillRow, PaperOrderRow
from storage.models.portfolio import BalanceRow, PositionRow
from storage.models.schedules import DcaRunRow, DcaScheduleRow

__all__ = [
    "AuditRow",
    "BalanceRow",
    "BarRow",
    "Base",
    "BotRow",
    "BotSignalRow",
    "CommandRow",
    "DcaRunRow",
    "DcaScheduleRow",
    "DealRow",
    "FillRow",
    "OrderRow",
    "PairsBlacklistRow",
    "PaperFillRow",
    "PaperOrderRow",
    "PositionRow",
    "TradingControlRow",
]
