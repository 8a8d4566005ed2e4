"""Feature store: entities, feature views, their versions, and materializations.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "feature_entities",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("join_keys", sa.JSON, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_feature_entities"),
        sa.UniqueConstraint("name", name="uq_feature_entities_name"),
    )
    op.create_table(
        "feature_views",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_feature_views"),
        sa.UniqueConstraint("name", name="uq_feature_views_name"),
    )
    op.create_table(
        "feature_view_versions",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=True),
        sa.Column("view_id", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("definition", sa.JSON, nullable=False),
        sa.Column("code_hash", sa.String(64)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_feature_view_versions"),
        sa.UniqueConstraint("view_id", "version", name="uq_feature_view_versions_view_id_version"),
        sa.UniqueConstraint("view_id", "digest", name="uq_feature_view_versions_view_id_digest"),
        sa.ForeignKeyConstraint(
            ["view_id"], ["feature_views.id"], name="fk_feature_view_versions_view_id_feature_views"
        ),
    )
    op.create_table(
        "feature_materializations",
        sa.Column("id", BigId, nullable=False, autoincrement=True),
        sa.Column("view_version_id", sa.Integer, nullable=False),
        sa.Column("online_store", sa.String(512), nullable=False),
        sa.Column("start_time", sa.Float),
        sa.Column("end_time", sa.Float, nullable=False),
        sa.Column("full", sa.Boolean, nullable=False),
        sa.Column("rows_read", sa.BigInteger, nullable=False),
        sa.Column("entities_written", sa.BigInteger, nullable=False),
        sa.Column("seconds", sa.Float, nullable=False),
        sa.Column("run_id", sa.String(32)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_feature_materializations"),
        sa.ForeignKeyConstraint(
            ["view_version_id"],
            ["feature_view_versions.id"],
            name="fk_feature_materializations_view_version",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_feature_materializations_run_id_runs"
        ),
    )
    op.create_index(
        "ix_feature_materializations_version_store_end",
        "feature_materializations",
        ["view_version_id", "online_store", "end_time"],
    )


def downgrade() -> None:
    for table in (
        "feature_materializations",
        "feature_view_versions",
        "feature_views",
        "feature_entities",
    ):
        op.drop_table(table)
