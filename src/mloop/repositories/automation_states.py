"""Automation's statuses, apart from the repository: `mloop automate`'s options name them
when the CLI loads (`mloop --help` among others), which must not build the repository's
records and protocol. Re-exported by :mod:`mloop.repositories.automation`."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ClaimStatus", "DecisionOutcome"]


class DecisionOutcome(StrEnum):
    """What a decision came to (``running`` while its round is under way)."""

    RUNNING = "running"
    PROMOTED = "promoted"
    REJECTED = "rejected"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    BLOCKED = "blocked"
    SKIPPED_COOLDOWN = "skipped_cooldown"


class ClaimStatus(StrEnum):
    """What an attempt to start a pipeline got (see :class:`Claim`)."""

    CLAIMED = "claimed"
    BUSY = "busy"
    COOLDOWN = "cooldown"
    STALE = "stale"
