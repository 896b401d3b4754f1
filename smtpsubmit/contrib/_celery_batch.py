"""Batches of the Celery integration: a Celery group of sending tasks, and its progress.

:meth:`~smtpsubmit.contrib.celery.SMTPTask.send_batch` queues one task per message as a
group; :class:`BatchRun` reads their results (one ``MGET`` per poll on a Redis result
backend) and :class:`BatchSummary` counts them for progress reports.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._celery_codec import OutcomeJSON, ReplyJSON

__all__ = ["BatchRun", "BatchSummary"]


@dataclass
class BatchSummary:
    """Where a batch stands: counts per status, and every refused recipient.

    ``errors`` counts tasks that ended in an exception instead of a result (a bad
    payload, a worker bug): count them with ``unknown`` until looked at.
    """

    total: int
    sent: int = 0
    failed: int = 0
    unknown: int = 0
    duplicate: int = 0
    errors: int = 0
    accepted: int = 0
    refused: dict[str, ReplyJSON] = field(default_factory=dict)
    unknown_keys: list[str] = field(default_factory=list)

    @property
    def done(self) -> int:
        """How many tasks have a final result."""
        return self.sent + self.failed + self.unknown + self.duplicate + self.errors

    @property
    def complete(self) -> bool:
        """Whether every task has a final result."""
        return self.done == self.total


class BatchRun:
    """The tasks of :meth:`SMTPTask.send_batch`: poll :meth:`summary` or :meth:`wait`."""

    def __init__(self, group_result: Any, keys: list[str]) -> None:
        self.group_result = group_result
        self.keys = keys
        self._outcomes: dict[int, OutcomeJSON | BaseException] = {}

    def __len__(self) -> int:
        return len(self.keys)

    def _poll(self) -> None:
        results = self.group_result.results
        pending = [i for i in range(len(results)) if i not in self._outcomes]
        if not pending:
            return
        backend = results[0].backend
        metas: list[Any]
        if hasattr(backend, "mget") and hasattr(backend, "get_key_for_task"):
            raw = backend.mget([backend.get_key_for_task(results[i].id) for i in pending])
            metas = [backend.decode_result(value) if value else None for value in raw]
        else:
            metas = [{"status": results[i].state, "result": results[i].result} for i in pending]
        for index, meta in zip(pending, metas, strict=True):
            if meta is None or meta["status"] not in ("SUCCESS", "FAILURE", "REVOKED"):
                continue
            value = meta["result"]
            if meta["status"] == "SUCCESS" and isinstance(value, dict):
                self._outcomes[index] = value  # type: ignore[assignment]
            else:
                self._outcomes[index] = (
                    value if isinstance(value, BaseException) else RuntimeError(repr(value))
                )

    def results(self) -> list[OutcomeJSON | BaseException | None]:
        """Each task's result so far, in order (``None`` while it runs, an exception
        for a task that failed)."""
        self._poll()
        return [self._outcomes.get(i) for i in range(len(self.keys))]

    def summary(self) -> BatchSummary:
        """The counts now (does not wait)."""
        summary = BatchSummary(total=len(self.keys))
        for index, outcome in enumerate(self.results()):
            if outcome is None:
                continue
            if isinstance(outcome, BaseException):
                summary.errors += 1
                summary.unknown_keys.append(self.keys[index])
                continue
            status = outcome["status"]
            setattr(summary, status, getattr(summary, status) + 1)
            summary.accepted += len(outcome["accepted"])
            summary.refused.update(outcome["refused"])
            if status == "unknown":
                summary.unknown_keys.append(outcome["key"])
        return summary

    def wait(
        self,
        timeout: float | None = None,
        *,
        interval: float = 0.5,
        on_progress: Callable[[BatchSummary], None] | None = None,
    ) -> BatchSummary:
        """Poll until every task has a result, or ``timeout`` seconds (``TimeoutError``).

        ``on_progress`` hears each summary whose ``done`` count changed.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        seen = -1
        while True:
            summary = self.summary()
            if on_progress is not None and summary.done != seen:
                on_progress(summary)
            seen = summary.done
            if summary.complete:
                return summary
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"{summary.done} of {summary.total} messages done")
            time.sleep(interval)
