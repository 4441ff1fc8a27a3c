"""Configuration, read from TRADINGD_* environment variables (and an optional .env file).

Why a hard stop on bad values: a trading daemon that starts with a half-understood setting is
worse than one that refuses to start. `load_settings()` turns pydantic's errors into one message
per bad setting that names the variable and what is allowed.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from storage.values import TIMEFRAMES

ENV_PREFIX = "TRADINGD_"


class SettingsError(RuntimeError):
    """Start-up refused because of configuration; the message says what to change."""


class CcxtVenueSettings(BaseModel):
    """One exchange reached through ccxt (jobs/venues/ccxt/), nested under its venue name:
    TRADINGD_CCXT__BINANCE__API_KEY, TRADINGD_CCXT__BINANCE__SECRET, TRADINGD_CCXT__BINANCE__SYMBOLS...
    Built only in live mode with the opt-in and keys (the check below); the keys are secrets,
    never shown in a message or a log line (daemon/logs.py masks every SecretStr in the settings)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    exchange: str = "binance"  # the ccxt exchange id (ccxt.exchanges)
    api_key: SecretStr | None = None
    secret: SecretStr | None = None
    sandbox: bool = False  # the exchange's testnet (ccxt set_sandbox_mode)
    symbols: list[str] = ["BTC/USDT"]  # what this venue trades (and the feed streams)
    # tests only: the REST base (".../api/v3" on Binance), the market-stream and user-stream bases
    rest_url: str | None = None
    ws_url: str | None = None
    ws_api_url: str | None = None
    options: dict[str, Any] = {}  # ccxt options merged over the venue's defaults
    timeout_ms: int = Field(10_000, ge=100, le=60_000)  # one HTTP call; past it the outcome is unknown
    rate_limit_ms: int | None = Field(None, ge=0)  # ccxt's own pacing; None: ccxt's figure
    weight_limit: int = Field(6000, ge=1)  # the exchange's request weight per minute (Binance's)
    slow_down_at: float = Field(0.7, gt=0, le=1)  # of weight_limit: pace requests from here on
    max_wait_s: float = Field(2.0, ge=0)  # a call waits this long for a rate-limit pause, else refused
    poll_interval_s: float = Field(5.0, gt=0)  # order polling while the user stream is down
    fee_bps: Decimal = Field(Decimal("10"), ge=0, le=1000)  # the preview's taker fee estimate

    @property
    def has_keys(self) -> bool:
        return bool(self.api_key and self.api_key.get_secret_value()
                    and self.secret and self.secret.get_secret_value())


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", env_file_encoding="utf-8", extra="ignore",
        env_nested_delimiter="__",
    )

    # --- where state lives
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/tradingd"
    redis_url: str = "redis://127.0.0.1:6379/0"
    queue_name: str = "tradingd:queue"

    # --- safety
    mode: Literal["paper", "live"] = "paper"
    live_trading_opt_in: bool = False  # live mode also needs this set to true, on purpose
    destructive_tools: bool = False  # MCP tools that delete configuration (delete_dca_schedule)
    mcp_http_token: SecretStr | None = None  # bearer token for the streamable-HTTP transport

    # --- which MCP tools are served (mcp_bridge/toolsets.py)
    toolsets: str = "default"  # comma-separated toolset names, 'default' or 'all'
    tools: str = ""  # comma-separated single tools served in addition to the toolsets
    read_only: bool = False  # serve only the tools annotated read-only, whatever else is chosen
    dynamic_toolsets: bool = False  # add list_toolsets and enable_toolset; the rest load on demand

    # --- network endpoints (loopback by default)
    mcp_http_host: str = "127.0.0.1"
    mcp_http_port: int = Field(8765, ge=1, le=65535)
    daemon_http_host: str = "127.0.0.1"
    daemon_http_port: int = Field(8780, ge=0, le=65535)  # /health and /metrics
    simulator_host: str = "127.0.0.1"
    simulator_port: int = Field(9443, ge=0, le=65535)
    feed_url: str | None = None  # a Binance-dialect combined-stream URL; None = embedded simulator

    # --- market
    symbols: list[str] = ["BTC/USDT", "ETH/USDT", "SPY"]
    simulator_seed: int = 42
    simulator_tick_ms: int = Field(100, ge=1, le=60_000)
    quote_stale_after_s: float = Field(5.0, gt=0)
    # history from a venue that keeps it (ccxt fetch_ohlcv), at daemon start: the newest N closed
    # bars of each of these timeframes for every symbol on such a venue (daemon/bars_backfill.py)
    bars_backfill_timeframes: list[str] = ["1m", "1h", "1d"]
    bars_backfill_count: int = Field(500, ge=0, le=5000)  # 0: no backfill at start

    # --- paper venue
    paper_fee_bps: Decimal = Field(Decimal("10"), ge=0, le=1000)
    paper_slippage_bps: Decimal = Field(Decimal("2"), ge=0, le=1000)
    paper_starting_balances: dict[str, Decimal] = {"USDT": Decimal("100000"), "USD": Decimal("100000")}

    # --- live venues through ccxt, by venue name (TRADINGD_CCXT__<NAME>__<SETTING>); live mode only
    ccxt: dict[str, CcxtVenueSettings] = {}
    # a symbol's venue when not the live venue listing it: {"BTC/USDT": "paper"} (JSON)
    venue_for_symbol: dict[str, str] = {}

    # --- risk
    max_order_notional: Decimal = Field(Decimal("25000"), gt=0)
    symbol_allowlist: list[str] = ["BTC/USDT", "ETH/USDT", "SPY"]
    enforce_market_hours: bool = True  # SPY only in the NYSE session; false: any time (simulated market)

    # --- worker / commands
    command_wait_s: float = Field(5.0, gt=0, le=120)  # how long an MCP tool waits for a result
    worker_wakeup: bool = True  # block on a Redis wake-up list instead of arq's fixed polling
    worker_poll_delay_s: float = Field(0.5, gt=0, le=10)
    worker_max_jobs: int = Field(20, ge=1, le=1000)
    job_timeout_s: int = Field(30, ge=1, le=3600)

    # --- scheduled DCA
    dca_misfire_grace_s: int = Field(3600, ge=0)  # default grace for fires missed while down
    reconcile_interval_s: float = Field(30.0, gt=0)

    # --- audit
    # the chain head's (seq, hash), appended here as it moves (storage/audit_anchor.py); empty: off
    audit_anchor_path: Path | None = Path(".tradingd/audit-anchors.jsonl")
    audit_anchor_every_s: float = Field(60.0, gt=0)
    backtest_dir: Path = Path(".tradingd/backtests")  # each backtest's charts and report.json, by id

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = False

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, v: str) -> str:
        if v.startswith("postgresql://") or v.startswith("postgres://"):
            v = "postgresql+asyncpg://" + v.split("://", 1)[1]
        if not v.startswith("postgresql+asyncpg://"):
            raise ValueError("must be a PostgreSQL URL, e.g. postgresql+asyncpg://user@host:5432/db")
        return v

    @field_validator("audit_anchor_path", mode="before")
    @classmethod
    def _empty_is_off(cls, v: object) -> object:
        return None if v == "" else v

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, v: str) -> str:
        if not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a Redis URL, e.g. redis://127.0.0.1:6379/0")
        return v

    @field_validator("bars_backfill_timeframes")
    @classmethod
    def _timeframes(cls, v: list[str]) -> list[str]:
        for tf in v:
            if tf not in TIMEFRAMES:
                raise ValueError(f"unknown timeframe {tf!r}; use some of {', '.join(TIMEFRAMES)}")
        return v

    @field_validator("ccxt")
    @classmethod
    def _venue_names(cls, v: dict[str, CcxtVenueSettings]) -> dict[str, CcxtVenueSettings]:
        for name in v:
            if name == "paper" or not name.isidentifier() or name != name.lower():
                raise ValueError(f"venue name {name!r}: use a lower-case word other than 'paper', "
                                 "e.g. binance")
        return v

    @model_validator(mode="after")
    def _live_needs_opt_in(self) -> Settings:
        if self.mode == "live" and not self.live_trading_opt_in:
            raise ValueError(
                "mode=live needs TRADINGD_LIVE_TRADING_OPT_IN=true as well; "
                "leave TRADINGD_MODE=paper to trade on the simulated market"
            )
        if self.mode == "live":
            if not self.ccxt:
                raise ValueError(
                    "mode=live needs a live venue: set TRADINGD_CCXT__BINANCE__API_KEY and "
                    "TRADINGD_CCXT__BINANCE__SECRET (another ccxt exchange: TRADINGD_CCXT__<NAME>__EXCHANGE)"
                )
            for name, venue in self.ccxt.items():
                if not venue.has_keys:
                    upper = name.upper()
                    raise ValueError(
                        f"mode=live: venue {name} has no API key and secret; set "
                        f"TRADINGD_CCXT__{upper}__API_KEY and TRADINGD_CCXT__{upper}__SECRET"
                    )
        known = {"paper", *self.ccxt} if self.mode == "live" else {"paper"}
        for symbol, venue_name in self.venue_for_symbol.items():
            if venue_name not in known:
                raise ValueError(f"TRADINGD_VENUE_FOR_SYMBOL sends {symbol} to {venue_name!r}, which is not "
                                 f"a venue of this mode ({', '.join(sorted(known))})")
        return self

    def live_venues(self) -> dict[str, CcxtVenueSettings]:
        """The ccxt venues this process trades on: in live mode (opted in, with keys), every one
        configured; in paper mode none, whatever is configured."""
        return dict(self.ccxt) if self.mode == "live" and self.live_trading_opt_in else {}


def _describe(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = [str(p) for p in e.get("loc", ()) if p != "__root__" and not isinstance(p, int)]
        name = ENV_PREFIX + "__".join(loc).upper() if loc else "configuration"
        given = e.get("input")
        # never echoed: a secret, or a whole venue section (which may hold one)
        secret = (any(p.endswith(("token", "key", "secret")) for p in loc)
                  or (loc[:1] == ["ccxt"] and len(loc) < 3))
        shown = "" if secret or given is None or isinstance(given, dict) else f" (got {given!r})"
        lines.append(f"{name}: {e['msg']}{shown}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment, or stop with a message naming each bad setting."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as err:
        raise SettingsError(_describe(err)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
