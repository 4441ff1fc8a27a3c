"""audit_append(): lock the chain, check its head and insert a transaction's entries in one call

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 12:10:00+00:00

Why a function: appending needs the chain's lock, a read of its head *after* the lock is held,
and the insert. As three statements that is three round trips per transaction on the order
path; inside a VOLATILE plpgsql function each statement takes a fresh snapshot, so the head
is read after the lock is granted and all three cost one round trip. The hashes are still
computed by the caller (storage/audit.py), which passes the head it expects: if the chain has
moved, nothing is written and the real head is returned for the caller to re-hash and retry.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 8233169 = 0x7DA0D1, the advisory lock key storage/audit.py names _AUDIT_LOCK_KEY
AUDIT_APPEND_FN = """
CREATE OR REPLACE FUNCTION audit_append(expect_seq bigint, expect_hash text, entries jsonb)
RETURNS TABLE (head_seq bigint, head_hash text)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(8233169);
    SELECT a.seq, a.hash INTO head_seq, head_hash FROM audit_log a ORDER BY a.seq DESC LIMIT 1;
    IF coalesce(head_seq, 0) <> expect_seq OR coalesce(head_hash, repeat('0', 64)) <> expect_hash THEN
        head_seq := coalesce(head_seq, 0);
        head_hash := coalesce(head_hash, repeat('0', 64));
        RETURN NEXT;
        RETURN;
    END IF;
    INSERT INTO audit_log (seq, ts, actor, action, subject, payload, prev_hash, hash)
    SELECT (e->>'seq')::bigint, (e->>'ts')::timestamptz, e->>'actor', e->>'action', e->>'subject',
           e->'payload', e->>'prev_hash', e->>'hash'
    FROM jsonb_array_elements(entries) AS e;
END;
$$;
"""


def upgrade() -> None:
    op.execute(AUDIT_APPEND_FN)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS audit_append(bigint, text, jsonb)")
