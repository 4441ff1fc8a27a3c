"""Candles from Binance's public kline CSV (data.binance.vision: a .csv or the .zip it comes in),
parsed and checked by jobs/domain/klines.py (a bad row refuses the file, naming its line)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from jobs.backtest.candles import Candles
from jobs.domain.klines import parse_kline_csv


def read_kline_text(path: Path) -> str:
    if path.suffix.lower() != ".zip":
        return path.read_text(encoding="utf-8")
    with zipfile.ZipFile(path) as z:
        members = [n for n in z.namelist() if n.lower().endswith(".csv")]
        if len(members) != 1:
            raise ValueError(f"{path.name} holds {len(members)} CSV files; expected exactly one")
        return z.read(members[0]).decode("utf-8")


def load_kline_csv(path: Path, symbol: str) -> Candles:
    """The file's 1-minute klines as candles of `symbol` (KlineFormatError names a bad line)."""
    bars = parse_kline_csv(io.StringIO(read_kline_text(path), newline=""), venue="csv", symbol=symbol,
                           timeframe="1m")
    if not bars:
        raise ValueError(f"{path.name} holds no klines")
    return Candles.from_bars(symbol, bars)
