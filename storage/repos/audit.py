"""The audit log as a repository: an effect's entries appended inside its transaction.

Why here: the append is a persistence optimization (storage/audit.py: the chain head each
database was left at is remembered, so the usual append is one round trip, and a statement of
the ledger or the orders repository may carry the entries itself as a CTE). jobs/ hands over
drafts and gets the entries as written; how they are chained and stored stays in storage.
"""

from __future__ import annotations

from collections.abc import Sequence

from storage.audit import AuditDraft, AuditEntry, write_audit
from storage.driver import Db


class AuditLog:
    def __init__(self, db: Db) -> None:
        self.db = db

    async def append(self, drafts: Sequence[AuditDraft]) -> list[AuditEntry]:
        """Chain `drafts` onto the log in the caller's transaction; the entries as written."""
        return await write_audit(self.db, list(drafts))
