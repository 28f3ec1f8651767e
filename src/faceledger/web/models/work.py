"""The work queues' response (``GET /api/v1/work``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from faceledger.services.work_queues import Queue, WorkQueues


class QueueItemOut(BaseModel):
    search_id: int
    case_number: str
    purpose: str
    searched_by: str
    searched_at: datetime
    state: str = Field(description="The review state the search waits in.")


class QueueOut(BaseModel):
    items: list[QueueItemOut] = Field(description="The oldest waiting first, at most 50.")
    total: int = Field(description="How many are waiting in all.")

    @classmethod
    def of(cls, queue: Queue | None) -> QueueOut | None:
        if queue is None:
            return None
        return cls(items=[QueueItemOut(**i.to_dict()) for i in queue.items], total=queue.total)


class RecentCaseOut(BaseModel):
    case_number: str
    last_search_at: datetime
    searches: int


class WorkQueuesOut(BaseModel):
    """What is waiting for the caller in their unit; a queue their roles do not give them is null."""

    username: str
    unit: str
    to_examine: QueueOut | None = Field(description="Searches awaiting examination (the caller's own first).")
    to_peer_review: QueueOut | None = Field(
        description="Searches awaiting the caller's blind peer assessment, or the verdict after it."
    )
    to_approve: QueueOut | None = Field(
        description="Searches awaiting approval in which the caller took no part."
    )
    recent_cases: list[RecentCaseOut] = Field(
        description="The cases of the caller's own most recent searches."
    )
    searches_today: int = Field(
        description="Searches the caller made (or reserved) in the policy's current day."
    )
    daily_limit: int | None = Field(
        description="The caller's daily limit under the policy in force; null: none in force."
    )

    @classmethod
    def of(cls, work: WorkQueues) -> WorkQueuesOut:
        return cls(
            username=work.username,
            unit=work.unit,
            to_examine=QueueOut.of(work.to_examine),
            to_peer_review=QueueOut.of(work.to_peer_review),
            to_approve=QueueOut.of(work.to_approve),
            recent_cases=[RecentCaseOut(**c.to_dict()) for c in work.recent_cases],
            searches_today=work.searches_today,
            daily_limit=work.daily_limit,
        )
