"""A Slack channel belongs to at most one business.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06

Until now nothing stopped two businesses from naming the same channel, and the business "here"
was whichever row the database happened to return first. The plain index on
(slack_team_id, slack_channel_id) becomes a unique constraint (its index serves the same lookups).

Channels already shared: the business that has been on Oodaloo longest (oldest ``created_at``,
then smallest id) keeps the channel, and the channel is cleared from the others (their
``slack_channel_id`` becomes NULL; their team, books, approvers and everything else stay). Those
businesses are then unlinked, exactly like a business that was never given a channel: its approvers
pick a new channel in the settings. Refusing to upgrade instead would leave every tenant on the old,
hijackable schema until someone edited rows by hand; keeping the oldest keeps the channel with the
business that was there first, which is the one a later, hijacking business would have displaced.
Unlinked businesses (NULL channel) are not affected: NULLs never collide in a unique constraint on
SQLite or PostgreSQL.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every business sharing its (team, channel) with a business that was there before it.
CLEAR_LATER_CLAIMS = """
UPDATE businesses SET slack_channel_id = NULL
WHERE slack_channel_id IS NOT NULL AND slack_team_id IS NOT NULL
  AND EXISTS (
    SELECT 1 FROM businesses AS earlier
    WHERE earlier.slack_team_id = businesses.slack_team_id
      AND earlier.slack_channel_id = businesses.slack_channel_id
      AND (earlier.created_at < businesses.created_at
           OR (earlier.created_at = businesses.created_at AND earlier.id < businesses.id))
  )
"""


def upgrade() -> None:
    op.execute(CLEAR_LATER_CLAIMS)
    with op.batch_alter_table("businesses") as batch:
        batch.drop_index("ix_businesses_slack")
        batch.create_unique_constraint(
            "uq_businesses_slack_channel", ["slack_team_id", "slack_channel_id"]
        )


def downgrade() -> None:
    # The channels cleared by the upgrade are not given back: which business had one is not kept.
    with op.batch_alter_table("businesses") as batch:
        batch.drop_constraint("uq_businesses_slack_channel", type_="unique")
        batch.create_index("ix_businesses_slack", ["slack_team_id", "slack_channel_id"])
