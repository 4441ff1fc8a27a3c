"""Whether an order's record must be on disk before the venue is called: decided here, once.

Before a call to a venue outside the database, the order's "submitting" record must be durable:
after a crash, a re-run finds it and reconciles by client order id instead of sending again.

A venue whose book is written in the ledger's own Postgres (the simulated exchange) lets the
record commit without waiting for the WAL flush (`synchronous_commit = off` for that
transaction only), which saves a flush on every order. Why that is safe: Postgres writes its WAL
in order, so a crash that lost the record lost the venue's later record of the order as well,
and the booking's synchronous commit after the venue call flushes both before any outcome is
shown. Whatever shows the record outside Postgres before that flush (the state view's held
publish) waits for the flush instead (jobs/effects.py, `durable_at_commit`).

A venue declares it keeps its book in the ledger by subclassing `BookInLedger`; any other venue
(and any wrapper around one) gets the safe default.
"""

from __future__ import annotations


class BookInLedger:
    """Marker: this venue's book is rows in the ledger's own Postgres, written after our record."""


def record_must_be_flushed(venue: object) -> bool:
    """True unless `venue` keeps its book in the ledger's Postgres (see the module's docstring)."""
    return not isinstance(venue, BookInLedger)
