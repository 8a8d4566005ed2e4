"""Schedules: events and pipeline schedules.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", BigId, nullable=False, autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(256), nullable=False),
        sa.Column("payload", sa.JSON),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
    )
    op.create_index("ix_events_kind_subject", "events", ["kind", "subject"])
    op.create_table(
        "pipeline_schedules",
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("pipeline", sa.String(1024), nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("cron", sa.String(256)),
        sa.Column("interval_seconds", sa.Integer),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("event_kind", sa.String(32)),
        sa.Column("event_subject", sa.String(256)),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("next_fire_at", sa.Float),
        sa.Column("last_fired_at", sa.Float),
        sa.Column("last_run_id", sa.String(32)),
        sa.Column("last_event_id", sa.BigInteger),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_pipeline_schedules"),
    )
    op.create_index("ix_pipeline_schedules_next_fire_at", "pipeline_schedules", ["next_fire_at"])


def downgrade() -> None:
    op.drop_index("ix_pipeline_schedules_next_fire_at", "pipeline_schedules")
    op.drop_table("pipeline_schedules")
    op.drop_index("ix_events_kind_subject", "events")
    op.drop_table("events")
