"""Every Redis key the system uses, in one place.

The state view is a cache of Postgres (plus live quotes): any key here except the queue and
pending previews can be flushed and rebuilt with `rebuild_state_view`.
"""

from __future__ import annotations

PREFIX = "td"

# live market data (written by the daemon's feed; not in Postgres)
def quote(symbol: str) -> str:
    return f"{PREFIX}:quote:{symbol}"


QUOTE_SYMBOLS = f"{PREFIX}:quotes"  # set of symbols with a quote

# bars: the newest BARS_RECENT_MAX of each (venue, symbol, timeframe), a zset open_time epoch ->
# bar record (storage/state/bars.py); derived from Postgres and rebuilt like orders
def bars(venue: str, symbol: str, timeframe: str) -> str:
    return f"{PREFIX}:bars:{venue}:{symbol}:{timeframe}"


BAR_SERIES = f"{PREFIX}:bars:*"  # every series (and BAR_VENUES), for the rebuild to clear
BAR_VENUES = f"{PREFIX}:bars:venues"  # hash symbol -> the venue its bars were last written for
BARS_RECENT_MAX = 500

# what each venue trades (storage/state/instruments.py): live data from the venues, like quotes,
# not in Postgres and not rebuilt from it; the daemon publishes them again when they are gone
def instruments(venue: str) -> str:
    return f"{PREFIX}:instruments:{venue}"  # hash symbol -> pair record


INSTRUMENT_VENUES = f"{PREFIX}:instruments"  # hash venue -> {"at", "count"}: its list is published
# a new value with every list published (any venue): a process that copies the lists (the MCP
# bridge's instrument catalogue) reads them again only when it changed
INSTRUMENTS_STAMP = f"{PREFIX}:instruments_stamp"

# orders
def order(order_id: str) -> str:
    return f"{PREFIX}:order:{order_id}"


ORDERS_BY_TIME = f"{PREFIX}:orders:by_time"  # zset order_id -> created_at epoch
ORDERS_OPEN = f"{PREFIX}:orders:open"  # set of order ids not in a final state
ORDERS_BY_CLIENT_ID = f"{PREFIX}:orders:by_cid"  # hash client_order_id -> order_id
# Filter indexes for list_orders (zset order_id -> created_at epoch), set with the order's record
# (writer._KEEP_NEWEST_ORDER). Every order index matches ORDER_INDEXES, so a rebuild clears them
# all, whichever symbols and schedules exist.
ORDER_INDEXES = f"{PREFIX}:orders:*"


def orders_by_symbol(symbol: str) -> str:
    return f"{PREFIX}:orders:sym:{symbol}"


def orders_by_schedule(schedule_id: str) -> str:
    return f"{PREFIX}:orders:sched:{schedule_id}"


def orders_by_final_status(status: str) -> str:
    """filled, cancelled or rejected: a final status never changes, so an order enters one for good."""
    return f"{PREFIX}:orders:st:{status}"


# The oldest created_at (epoch) of the orders the last rebuild loaded, when it loaded its limit:
# older orders are in Postgres but not in the view (absent: the view holds them all)
ORDERS_FLOOR = f"{PREFIX}:orders:floor"

# fills: one record per fill (immutable) and time indexes (zset fill_id -> fill ts epoch)
def fill(fill_id: str) -> str:
    return f"{PREFIX}:fill:{fill_id}"


FILL_INDEXES = f"{PREFIX}:fills:*"
FILLS_BY_TIME = f"{PREFIX}:fills:by_time"
FILLS_FLOOR = f"{PREFIX}:fills:floor"  # as ORDERS_FLOOR, for the fills the rebuild loaded


def fills_by_symbol(symbol: str) -> str:
    return f"{PREFIX}:fills:sym:{symbol}"


def fills_by_order(order_id: str) -> str:
    return f"{PREFIX}:fills:order:{order_id}"

# portfolio
POSITIONS = f"{PREFIX}:positions"  # hash "venue|symbol" -> position JSON
BALANCES = f"{PREFIX}:balances"  # hash "venue|asset" -> balance JSON

# schedules
SCHEDULES = f"{PREFIX}:schedules"  # hash schedule_id -> schedule JSON

# commands
def command(command_id: str) -> str:
    return f"{PREFIX}:cmd:{command_id}"


def command_done(command_id: str) -> str:
    """A list the worker pushes the final command view to, so waiters block instead of polling."""
    return f"{PREFIX}:cmd:{command_id}:done"


COMMAND_TTL_S = 7 * 24 * 3600

# audit
AUDIT_RECENT = f"{PREFIX}:audit:recent"  # list, newest first, capped
AUDIT_RECENT_MAX = 500

# risk
TRADING_STATE = f"{PREFIX}:risk:trading_state"  # JSON {"state": "ACTIVE"|"HALTED", "reason": ...}

# The first equity get_portfolio valued each UTC day, per quote currency (hash quote -> JSON
# {"at", "equity": {currency: amount}}), for the day's change. Live data like quotes: not in
# Postgres and not rebuilt; when missing (a new day, a flushed Redis) the next valuation is kept.
def day_start_equity(day: str) -> str:
    return f"{PREFIX}:equity:day:{day}"


DAY_START_EQUITY_TTL_S = 3 * 24 * 3600

# previews (single-use confirmation tokens; deliberately not rebuilt)
def preview(preview_id: str) -> str:
    return f"{PREFIX}:preview:{preview_id}"


PREVIEW_TTL_S = 30

# process health and wake-ups
def heartbeat(component: str) -> str:
    return f"{PREFIX}:health:{component}"


WORKER_WAKEUP = f"{PREFIX}:worker:wakeup"
# arq's own key (arq.constants.in_progress_key_prefix), set while a worker runs the job: a queued
# job with it is running, not waiting (storage/state/health.py)
ARQ_IN_PROGRESS_PREFIX = "arq:in-progress:"
WORKER_INFLIGHT = f"{PREFIX}:worker:inflight"  # hash job id -> id of the worker running it
WORKER_ALIVE_PREFIX = f"{PREFIX}:worker:alive:"  # + worker id: refreshed while the worker lives


def worker_alive(worker_id: str) -> str:
    return WORKER_ALIVE_PREFIX + worker_id


SCHEDULES_CHANGED = f"{PREFIX}:schedules:changed"  # pub/sub channel the daemon listens on

# The view's own state. READY is written last by a completed rebuild (JSON {"at", "redis_run_id"})
# and is the only proof that the view holds Postgres's data: a FLUSHDB or a restarted Redis without
# persistence removes it, and no worker write ever sets it, so reads refuse to answer from a view
# without it (reader.ViewRebuilding). REBUILDING holds the token of the rebuild under way; the
# rebuild sets READY only if its token is still there, so a flush in the middle of a rebuild
# leaves the view not ready (and the daemon's view guard rebuilds again).
STATE_READY = f"{PREFIX}:state:ready"
STATE_REBUILDING = f"{PREFIX}:state:rebuilding"
STATE_REBUILDING_TTL_S = 120  # a rebuild that died with its process does not block readiness for ever


def preview_used(preview_id: str) -> str:
    """Marker left when a preview token is consumed: JSON {"command_id", "outcome", "reason"}."""
    return f"{PREFIX}:preview_used:{preview_id}"


PREVIEW_USED_TTL_S = 600
