"""`tradingd bars import`: history from Binance's public kline files into Postgres and the view.

The whole file is parsed and checked before anything is written (jobs/domain/klines.py), so a
bad row leaves the database as it was; the write is the repository's idempotent upsert, so an
import run twice, or overlapping bars the daemon built, ends with one row per bar. The view gets
the newest of the imported bars afterwards; if Redis is unreachable the import still stands (the
next rebuild of the view reads it from Postgres).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import RedisError

from jobs.domain.bars import UnknownTimeframe, timeframe_length
from jobs.domain.instruments import UnknownInstrumentError, get_instrument
from jobs.domain.klines import KlineFormatError, parse_kline_csv
from jobs.venues.registry import venue_for_symbol  # also fills the instrument catalogue
from storage.repos.store import connect
from storage.settings import Settings
from storage.state import keys
from storage.state.bars import write_bars
from storage.values import Timeframe


class BarsImportError(Exception):
    pass


@contextmanager
def _lines(path: Path) -> Iterator[io.TextIOBase]:
    """The CSV's lines: the file itself, or the one CSV inside a .zip as data.binance.vision serves it."""
    if path.suffix.lower() != ".zip":
        with path.open(encoding="utf-8", newline="") as f:
            yield f
        return
    with zipfile.ZipFile(path) as z:
        members = [n for n in z.namelist() if n.lower().endswith(".csv")]
        if len(members) != 1:
            raise BarsImportError(f"{path.name} holds {len(members)} CSV files; expected exactly one")
        with z.open(members[0]) as raw:
            yield io.TextIOWrapper(raw, encoding="utf-8", newline="")


async def import_kline_file(settings: Settings, path: Path, *, symbol: str, timeframe: str,
                            venue: str | None = None) -> str:
    """Import `path` under `venue` (default: the venue the symbol trades on); returns a one-line
    summary. BarsImportError says why nothing was written."""
    try:
        canonical = get_instrument(symbol).symbol
        timeframe_length(timeframe)
    except (UnknownInstrumentError, UnknownTimeframe) as e:
        raise BarsImportError(str(e)) from None
    venue = venue or venue_for_symbol(canonical)
    tf: Timeframe = timeframe  # type: ignore[assignment]  # checked just above
    try:
        with _lines(path) as lines:
            bars = parse_kline_csv(lines, venue=venue, symbol=canonical, timeframe=tf)
    except KlineFormatError as e:
        raise BarsImportError(f"{path.name}, {e}") from None
    except (UnicodeDecodeError, zipfile.BadZipFile) as e:
        raise BarsImportError(f"{path.name} is not a kline CSV: {e}") from None
    if not bars:
        raise BarsImportError(f"{path.name} holds no kline rows")
    store = connect(settings.database_url, pool_size=1)
    try:
        await store.bars.upsert(bars)
    finally:
        await store.close()
    shown = "and the state view"
    redis = Redis.from_url(settings.redis_url)
    try:
        await write_bars(redis, sorted(bars, key=lambda b: b.open_time)[-keys.BARS_RECENT_MAX:])
    except (RedisError, OSError) as e:
        shown = f"(not the state view: {type(e).__name__}; its next rebuild reads them)"
    finally:
        await redis.aclose()
    first, last = min(b.open_time for b in bars), max(b.open_time for b in bars)
    return (f"imported {len(bars)} {tf} bars of {canonical} on {venue} into Postgres {shown}: "
            f"{first.isoformat()} .. {last.isoformat()}")
