"""Appending to and verifying the hash-chained audit log.

A transaction collects its entries as drafts (`AuditDraft`) and writes them just before it
commits (`write_audit`), so the audit rows commit or roll back together with the effect they
describe. The write is one call of the database function `audit_append` (migration 0002): it
takes the chain's advisory lock, checks that the head is the one we hashed from, and inserts.
We remember the head each database was left at, so the usual write is one round trip; if
another process moved the chain, the function returns the real head and we re-hash once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from storage.driver import Db
from storage.models.audit import AuditRow

GENESIS_HASH = "0" * 64

_APPEND = text("SELECT head_seq, head_hash FROM audit_append(:seq, :hash, CAST(:entries AS jsonb))")
_last_head: dict[str, tuple[int, str]] = {}  # database URL -> (seq, hash) we last left the chain at


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


@dataclass(frozen=True, slots=True)
class AuditDraft:
    """An entry before it has its place in the chain (seq, prev hash, hash)."""

    ts: datetime
    actor: str
    action: str
    subject: str
    payload: dict[str, Any]


def audit_draft(*, actor: str, action: str, subject: str, payload: dict[str, Any]) -> AuditDraft:
    clean = orjson.loads(canonical_json(payload))  # what JSONB will hand back on verify
    return AuditDraft(datetime.now(UTC), actor, action, subject, clean)


def _chain(drafts: list[AuditDraft], head: tuple[int, str]) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    seq, prev = head
    for d in drafts:
        seq += 1
        digest = entry_hash(seq, d.ts, d.actor, d.action, d.subject, d.payload, prev)
        entries.append(AuditEntry(seq, d.ts, d.actor, d.action, d.subject, d.payload, digest))
        prev = digest
    return entries


def _rows_json(entries: list[AuditEntry], head: tuple[int, str]) -> str:
    return orjson.dumps([{"seq": e.seq, "ts": e.ts.isoformat(), "actor": e.actor, "action": e.action,
                          "subject": e.subject, "payload": e.payload, "hash": e.hash,
                          "prev_hash": entries[i - 1].hash if i else head[1]}
                         for i, e in enumerate(entries)]).decode()


# A statement of the caller's can carry the append as a CTE named `audit` (saving the round trip
# of write_audit): `AUDIT_APPEND_CTE.format(gate=...)` in its WITH list, `AUDIT_HEAD` in its
# final SELECT (which also makes Postgres run it), `CarriedAudit.params` among its parameters.
# The gate is SQL that says whether the entries belong in (e.g. "the row they describe changed");
# when it is false nothing is inserted and `CarriedAudit.settle` writes what belongs now.
AUDIT_APPEND_SELECT = (
    "SELECT head_seq, head_hash FROM audit_append(CAST(:audit_seq AS bigint), CAST(:audit_hash AS text), "
    "CASE WHEN {gate} THEN CAST(:audit_entries AS jsonb) ELSE CAST('[]' AS jsonb) END) "
    "WHERE CAST(:audit_any AS boolean) AND {gate}")
AUDIT_APPEND_CTE = "audit AS (" + AUDIT_APPEND_SELECT + ")"
AUDIT_HEAD = ("(SELECT head_seq FROM audit) AS audit_head_seq, "
              "(SELECT head_hash FROM audit) AS audit_head_hash")


@dataclass(frozen=True, slots=True)
class CarriedAudit:
    """Drafts chained onto the head last seen, for a statement to append (AUDIT_APPEND_CTE)."""

    head: tuple[int, str]
    entries: list[AuditEntry]

    @classmethod
    def of(cls, db: Db, drafts: list[AuditDraft]) -> CarriedAudit:
        head = _last_head.get(db.database, (0, GENESIS_HASH))
        return cls(head, _chain(drafts, head))

    @property
    def params(self) -> dict[str, Any]:
        return {"audit_seq": self.head[0], "audit_hash": self.head[1], "audit_any": bool(self.entries),
                "audit_entries": _rows_json(self.entries, self.head)}

    async def settle(self, db: Db, row: Any, *, went_in: bool, drafts: list[AuditDraft]) -> list[AuditEntry]:
        """After the statement: its entries if they went in (the gate held and the chain had not
        moved); otherwise `drafts`, what belongs in the log now, written by write_audit."""
        if row.audit_head_seq is not None:  # another process moved the chain: nothing was inserted
            _last_head[db.database] = (row.audit_head_seq, row.audit_head_hash)
        elif went_in and self.entries:
            _last_head[db.database] = (self.entries[-1].seq, self.entries[-1].hash)
            return self.entries
        return await write_audit(db, drafts)


async def write_audit(db: Db, drafts: list[AuditDraft]) -> list[AuditEntry]:
    """Chain `drafts` onto the log inside the caller's transaction; returns them as written."""
    if not drafts:
        return []
    database = db.database
    head = _last_head.get(database, (0, GENESIS_HASH))
    for _ in range(2):  # the second try cannot miss: the first took the lock, so the head stays put
        entries = _chain(drafts, head)
        moved = await db.first(_APPEND, {"seq": head[0], "hash": head[1],
                                         "entries": _rows_json(entries, head)})
        if moved is None:
            _last_head[database] = (entries[-1].seq, entries[-1].hash)
            return entries
        head = (moved.head_seq, moved.head_hash)
    raise RuntimeError("audit chain head moved while its lock was held")  # pragma: no cover


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


async def check_witnessed(session: AsyncSession, witnessed: Sequence[tuple[int, str]]) -> VerifyReport:
    """Compare the table with entries someone else saw written: (seq, hash) pairs, e.g. the
    state view's recent audit feed, which every effect pushes to Redis as it commits.

    The chain alone cannot show its newest rows deleted, or a tail rewritten and re-hashed:
    what is left is a valid chain. A witness outside Postgres can: a row it saw must still be
    there with the hash it saw.
    """
    if not witnessed:
        return VerifyReport(True, 0)
    seqs = sorted({seq for seq, _ in witnessed})
    result = await session.execute(select(AuditRow.seq, AuditRow.hash).where(AuditRow.seq.in_(seqs)))
    rows: dict[int, str] = {seq: digest for seq, digest in result}
    for seq, digest in sorted(witnessed):
        if seq not in rows:
            last = await session.scalar(select(func.max(AuditRow.seq)))
            return VerifyReport(False, len(rows), seq, "deleted",
                                f"row {seq}, seen written (hash {digest[:12]}…), is missing; "
                                f"the log now ends at row {last or 0}")
        if rows[seq] != digest:
            return VerifyReport(False, len(rows), seq, "edited",
                                f"row {seq} has hash {rows[seq][:12]}…, "
                                f"but was seen written with {digest[:12]}…")
    return VerifyReport(True, len(rows))


async def recent_audit(session: AsyncSession, limit: int = 50) -> list[AuditEntry]:
    rows = (await session.execute(select(AuditRow).order_by(AuditRow.seq.desc()).limit(limit))).scalars()
    return [AuditEntry(r.seq, r.ts, r.actor, r.action, r.subject, r.payload, r.hash) for r in rows]
