"""Anchors of the audit chain outside Postgres: its head's (seq, hash), appended to a file as it moves.

Why: the chain shows a row edited or inserted, but not its newest rows deleted (what is left is
a valid chain), nor a tail rewritten and re-hashed. The state view's audit feed in Redis
witnesses the newest rows, but only until a state rebuild refills it from the table or Redis
is flushed. An anchor file survives both: every (seq, hash) it holds for a database must still
be in that database's table with that hash (`tradingd audit verify`). A database restored from
an older backup, or a tail cut by hand, shows as rows missing after the last anchor that is
still there. Rows newer than the newest anchor are covered by the Redis feed only.

One JSON line per anchor, flushed to disk before the daemon goes on; anchors are kept per
database name, so tests and benchmarks on throwaway databases cannot clash with the real one.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import orjson
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.models import AuditRow

Anchor = tuple[int, str]  # (seq, hash)


def read_anchors(path: Path, database: str) -> list[Anchor]:
    """The anchors recorded for `database`, oldest first; none if there is no file yet.

    A line that does not parse is skipped: the last one may be torn by a crash mid-append.
    """
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        return []
    anchors: list[Anchor] = []
    for line in lines:
        try:
            rec = orjson.loads(line)
            if rec["db"] == database:
                anchors.append((int(rec["seq"]), str(rec["hash"])))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
    return anchors


def anchored_databases(path: Path) -> set[str]:
    """The databases the file holds anchors for (to say, when none is for ours, whose they are)."""
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        return set()
    names: set[str] = set()
    for line in lines:
        try:
            names.add(str(orjson.loads(line)["db"]))
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue
    return names


def append_anchor(path: Path, database: str, anchor: Anchor, at: datetime | None = None) -> None:
    """Append one anchor and make it durable (fsync) before returning."""
    path.parent.mkdir(parents=True, exist_ok=True)
    seq, digest = anchor
    line = orjson.dumps({"db": database, "seq": seq, "hash": digest,
                         "at": (at or datetime.now(UTC)).isoformat()}) + b"\n"
    with path.open("ab") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


async def database_name(session: AsyncSession) -> str:
    return str(await session.scalar(select(func.current_database())))


async def chain_head(session: AsyncSession) -> Anchor | None:
    """The newest row's (seq, hash), or None for an empty log."""
    newest = select(AuditRow.seq, AuditRow.hash).order_by(AuditRow.seq.desc()).limit(1)
    row = (await session.execute(newest)).first()
    return None if row is None else (int(row.seq), str(row.hash))


class ChainHeads:
    """What the daemon's anchorer reads (daemon/anchors.py): each read on a session of its own."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def database_name(self) -> str:
        async with self.sessions() as s:
            return await database_name(s)

    async def head(self) -> Anchor | None:
        async with self.sessions() as s:
            return await chain_head(s)
