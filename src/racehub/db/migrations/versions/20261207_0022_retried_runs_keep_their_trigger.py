"""A retried sync run keeps its trigger: runs once relabelled "retry" get theirs back.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07

Until now the engine overwrote a run's trigger with "retry" when it resumed a run waiting
for its retry, so a manual run that needed a second attempt read as "retry" in the history.
The engine now keeps the trigger and the run's ``attempts`` tell the retries. The trigger a
run was requested with is in its "sync.request" audit entry (written with the run, in its
transaction): this copies it back. A run without one (none is expected) keeps "retry"
rather than a guessed trigger. The audit log is only read.

Downgrade relabels every run with more than one attempt "retry", as the engine did.
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0022'
down_revision: str | None = '0021'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("""
        UPDATE sync_runs AS r SET trigger = a.after ->> 'trigger'
        FROM audit_log AS a
        WHERE r.trigger = 'retry' AND a.action = 'sync.request'
          AND a.tenant_id = r.tenant_id AND a.target_type = 'sync_run' AND a.target_id = r.id::text
          AND a.after ->> 'trigger' IN ('manual', 'schedule', 'webhook')
    """)


def downgrade() -> None:
    op.execute("UPDATE sync_runs SET trigger = 'retry' WHERE attempts > 1")
