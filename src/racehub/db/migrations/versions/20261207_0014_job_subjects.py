"""A job run records its subject: the row it works on.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07

Controlling a run through /api/jobs checked only its kind's permission, so a RESULTS_OFFICER
could cancel a TENANT_ADMIN-only number import or an audit-log export. Who may read and
control a run depends on what it works on (the import's type, the export's list), so the
run names it: subject_type and subject_id (no foreign key: subjects live in several
tables). Existing runs are backfilled where the subject can be derived: an import's or an
export's run from the row pointing at it, a bib assignment from the category in its
params. Runs left without a subject are read as the strictest case of their kind's rule.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('job_runs', sa.Column('subject_type', sa.String(length=40), nullable=True))
    op.add_column('job_runs', sa.Column('subject_id', sa.Uuid(), nullable=True))
    op.execute(
        "UPDATE job_runs r SET subject_type = 'import', subject_id = i.id "
        "FROM imports i WHERE i.job_run_id = r.id AND i.tenant_id = r.tenant_id"
    )
    op.execute(
        "UPDATE job_runs r SET subject_type = 'export', subject_id = e.id "
        "FROM exports e WHERE e.job_run_id = r.id AND e.tenant_id = r.tenant_id"
    )
    op.execute(
        "UPDATE job_runs SET subject_type = 'category', "
        "subject_id = (params->>'category_id')::uuid "
        "WHERE kind = 'events.assign_bibs' AND subject_id IS NULL "
        "AND params->>'category_id' ~ "
        "'^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'"
    )
    op.create_index('ix_job_runs_tenant_id_subject_type_subject_id', 'job_runs',
                    ['tenant_id', 'subject_type', 'subject_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_job_runs_tenant_id_subject_type_subject_id', table_name='job_runs')
    op.drop_column('job_runs', 'subject_id')
    op.drop_column('job_runs', 'subject_type')
