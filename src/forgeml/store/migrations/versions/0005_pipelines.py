"""Pipelines: pipeline runs and their step runs.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "pipeline_runs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("pipeline", sa.String(256), nullable=False),
        sa.Column("ref", sa.String(1024), nullable=False),
        sa.Column("source_file", sa.String(1024)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("executor", sa.String(64), nullable=False),
        sa.Column("trigger", sa.String(256), nullable=False),
        sa.Column("resumed_from", sa.String(32)),
        sa.Column("dedupe_key", sa.String(256)),
        sa.Column("host", sa.String(256), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("pid_started", sa.Float, nullable=False),
        sa.Column("heartbeat_at", sa.Float, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("ended_at", sa.Float),
        sa.Column("error", sa.Text),
        sa.Column("result", sa.JSON),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_pipeline_runs"),
        sa.UniqueConstraint("dedupe_key", name="uq_pipeline_runs_dedupe_key"),
    )
    op.create_index(
        "ix_pipeline_runs_pipeline_created_at", "pipeline_runs", ["pipeline", "created_at"]
    )
    op.create_index("ix_pipeline_runs_status", "pipeline_runs", ["status"])
    op.create_table(
        "step_runs",
        sa.Column("id", BigId, nullable=False, autoincrement=True),
        sa.Column("pipeline_run_id", sa.String(32), nullable=False),
        sa.Column("step", sa.String(256), nullable=False),
        sa.Column("function", sa.String(1024), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("cache_key", sa.String(64)),
        sa.Column("inputs", sa.JSON, nullable=False),
        sa.Column("outputs", sa.JSON),
        sa.Column("explain", sa.JSON),
        sa.Column("source_run_id", sa.String(32)),
        sa.Column("logs", sa.JSON),
        sa.Column("started_at", sa.Float),
        sa.Column("ended_at", sa.Float),
        sa.Column("error", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_step_runs"),
        sa.UniqueConstraint("pipeline_run_id", "step", name="uq_step_runs_pipeline_run_id_step"),
        sa.ForeignKeyConstraint(
            ["pipeline_run_id"],
            ["pipeline_runs.id"],
            name="fk_step_runs_pipeline_run_id_pipeline_runs",
        ),
    )
    op.create_index("ix_step_runs_cache_key", "step_runs", ["cache_key"])
    op.create_index("ix_step_runs_step", "step_runs", ["step"])


def downgrade() -> None:
    op.drop_index("ix_step_runs_step", "step_runs")
    op.drop_index("ix_step_runs_cache_key", "step_runs")
    op.drop_table("step_runs")
    op.drop_index("ix_pipeline_runs_status", "pipeline_runs")
    op.drop_index("ix_pipeline_runs_pipeline_created_at", "pipeline_runs")
    op.drop_table("pipeline_runs")
