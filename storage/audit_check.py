"""`tradingd audit verify`'s checks, in one place: the chain, what the view saw, the anchors.

Why together: each check covers what the one before cannot see (storage/audit.py: an edited or
inserted row; the state view's feed: the newest rows cut or re-hashed; storage/audit_anchor.py:
a tail cut after the feed was refilled or flushed), and each runs only if the one before passed.
The CLI reports the findings; the reading of Postgres stays here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from storage.audit import VerifyReport, check_witnessed, verify_chain
from storage.audit_anchor import Anchor, database_name, read_anchors
from storage.repos.store import Store


@dataclass(frozen=True, slots=True)
class AuditFindings:
    chain: VerifyReport  # the chain on its own
    witnessed: VerifyReport  # against what the state view saw written (the chain's report if it failed)
    anchored: VerifyReport  # against the anchor file (the report before it if that failed)
    database: str  # current_database(): the anchors are kept under it
    anchors: list[Anchor]  # the anchors found for it (none without a file)


async def check_audit(store: Store, witnessed: Sequence[Anchor], anchor_path: Path | None) -> AuditFindings:
    async with store.sessions() as session:
        chain = await verify_chain(session)
        seen = await check_witnessed(session, witnessed) if chain.ok else chain
        database = await database_name(session)
        anchors = read_anchors(anchor_path, database) if anchor_path is not None else []
        anchored = await check_witnessed(session, anchors) if seen.ok else seen
    return AuditFindings(chain, seen, anchored, database, anchors)
