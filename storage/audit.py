"""Appending to and verifying the hash-chained audit log.

Appends take a transaction-scoped advisory lock so concurrent writers form one chain; the
lock is released with the caller's transaction, so the audit row commits or rolls back
together with the effect it describes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from storage.models.audit import AuditRow
from storage.tables import AUDIT

GENESIS_HASH = "0" * 64
_AUDIT_LOCK_KEY = 0x7D_A0D1  # any constant; names the audit chain's advisory lock
_HEAD_KEY = "tradingd.audit_head"  # .info: (transaction, seq, hash) of our last append
# Built once: a statement object reused with new parameters skips SQLAlchemy's per-call cache-key work.
_LOCK_CHAIN = text("SELECT pg_advisory_xact_lock(:k)").bindparams(k=_AUDIT_LOCK_KEY)
_CHAIN_HEAD = select(AUDIT.c.seq, AUDIT.c.hash).order_by(AUDIT.c.seq.desc()).limit(1)
_INSERT = insert(AUDIT)

Db = AsyncSession | AsyncConnection  # anything that runs statements inside the caller's transaction


def _json_default(obj: Any) -> Any:
    return str(obj)


def canonical_json(data: Any) -> bytes:
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS, default=_json_default)


def entry_hash(seq: int, ts: datetime, actor: str, action: str, subject: str,
               payload: dict[str, Any], prev_hash: str) -> str:
    body = canonical_json({
        "seq": seq, "ts": ts.astimezone(UTC).isoformat(), "actor": actor, "action": action,
        "subject": subject, "payload": payload, "prev": prev_hash,
    })
    return hashlib.sha256(body).hexdigest()


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    ts: datetime
    actor: str
    action: str
    subject: str
    payload: dict[str, Any]
    hash: str

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "ts": self.ts.isoformat(), "actor": self.actor, "action": self.action,
                "subject": self.subject, "payload": self.payload, "hash": self.hash}


async def append_audit(db: Db, *, actor: str, action: str, subject: str,
                       payload: dict[str, Any]) -> AuditEntry:
    """Add one entry to the chain inside the caller's transaction (a session or a connection).

    The first append of a transaction takes the chain's lock and reads its head; later appends in
    the same transaction (a fill, the order's new status, the command's result) reuse that head,
    which nobody else can move while the lock is held.
    """
    tx = db.get_transaction()
    cached = db.info.get(_HEAD_KEY)
    if cached is not None and cached[0] is tx:
        seq, prev = cached[1] + 1, cached[2]
    else:
        await db.execute(_LOCK_CHAIN)
        last = (await db.execute(_CHAIN_HEAD)).first()
        seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
    ts = datetime.now(UTC)
    clean = orjson.loads(canonical_json(payload))  # what JSONB will hand back on verify
    digest = entry_hash(seq, ts, actor, action, subject, clean, prev)
    await db.execute(_INSERT, {"seq": seq, "ts": ts, "actor": actor, "action": action, "subject": subject,
                               "payload": clean, "prev_hash": prev, "hash": digest})
    db.info[_HEAD_KEY] = (tx, seq, digest)
    return AuditEntry(seq, ts, actor, action, subject, clean, digest)


Problem = Literal["edited", "inserted", "deleted"]


@dataclass(frozen=True, slots=True)
class VerifyReport:
    ok: bool
    rows_checked: int
    first_bad_seq: int | None = None
    problem: Problem | None = None
    detail: str = ""


async def verify_chain(session: AsyncSession, *, batch: int = 5000) -> VerifyReport:
    """Walk the chain in order and report the first row that was edited, inserted or deleted.

    - edited: the row's stored hash no longer matches its contents;
    - deleted: the row's prev_hash matches no longer the row before it, but a hash seen
      earlier, or sequence numbers skip;
    - inserted: the row's contents hash correctly but it points at a predecessor that is not
      the row before it (a forged row spliced in).
    """
    prev_hash, expected_seq, checked = GENESIS_HASH, 1, 0
    last_seq = 0
    while True:
        rows = (await session.execute(
            select(AuditRow).where(AuditRow.seq > last_seq).order_by(AuditRow.seq).limit(batch)
        )).scalars().all()
        if not rows:
            return VerifyReport(True, checked)
        for row in rows:
            recomputed = entry_hash(row.seq, row.ts, row.actor, row.action, row.subject, row.payload,
                                    row.prev_hash)
            if recomputed != row.hash:
                return VerifyReport(False, checked, row.seq, "edited",
                                    f"row {row.seq} ({row.action} {row.subject}) does not match its hash")
            if row.seq != expected_seq and row.prev_hash == prev_hash:
                return VerifyReport(False, checked, row.seq, "inserted",
                                    f"row {row.seq} was added out of sequence (expected seq {expected_seq})")
            if row.prev_hash != prev_hash:
                if row.seq > expected_seq:
                    return VerifyReport(False, checked, expected_seq, "deleted",
                                        f"rows {expected_seq}..{row.seq - 1} are missing")
                return VerifyReport(False, checked, row.seq, "inserted",
                                    f"row {row.seq} does not chain to row {row.seq - 1}")
            prev_hash, expected_seq, last_seq = row.hash, row.seq + 1, row.seq
            checked += 1


async def recent_audit(session: AsyncSession, limit: int = 50) -> list[AuditEntry]:
    rows = (await session.execute(select(AuditRow).order_by(AuditRow.seq.desc()).limit(limit))).scalars()
    return [AuditEntry(r.seq, r.ts, r.actor, r.action, r.subject, r.payload, r.hash) for r in rows]
