"""Data versioning: datasets, versions, tags, remotes, stat cache, lineage edges.

Revision ID: 0002_data
Revises: 0001_initial
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_data"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

ID = sa.String(32)
DIGEST = sa.String(64)


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_datasets"),
        sa.UniqueConstraint("name", name="uq_datasets_name"),
    )
    op.create_table(
        "dataset_versions",
        sa.Column("dataset_id", ID, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("tree", DIGEST, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("source_path", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("files", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.BigInteger()),
        sa.Column("stats", sa.Text()),
        sa.Column("validation", sa.Text()),
        sa.Column("message", sa.Text()),
        sa.Column("user", sa.String(200)),
        sa.Column("command", sa.Text()),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("dataset_id", "version", name="pk_dataset_versions"),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"],
                                name="fk_dataset_versions_dataset_id_datasets"),
    )
    op.create_table(
        "dataset_tags",
        sa.Column("dataset_id", ID, nullable=False),
        sa.Column("tag", sa.String(200), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("dataset_id", "tag", name="pk_dataset_tags"),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"],
                                name="fk_dataset_tags_dataset_id_datasets"),
    )
    op.create_table(
        "remotes",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_remotes"),
    )
    op.create_table(
        "stat_cache",
        sa.Column("path", sa.String(1000), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=False),
        sa.Column("inode", sa.BigInteger(), nullable=False),
        sa.Column("digest", DIGEST, nullable=False),
        sa.PrimaryKeyConstraint("path", name="pk_stat_cache"),
    )
    op.create_table(
        "lineage_edges",
        sa.Column("src", sa.String(300), nullable=False),
        sa.Column("dst", sa.String(300), nullable=False),
        sa.Column("relation", sa.String(50), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("src", "dst", "relation", name="pk_lineage_edges"),
    )
    op.create_index("ix_lineage_edges_dst", "lineage_edges", ["dst"])


def downgrade() -> None:
    op.drop_index("ix_lineage_edges_dst", "lineage_edges")
    for table in ("lineage_edges", "stat_cache", "remotes", "dataset_tags", "dataset_versions",
                  "datasets"):
        op.drop_table(table)
