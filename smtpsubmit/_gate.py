"""Cheap primitives for the per-message path: a lock that costs nothing uncontended, and
the event loop's clock.

Why not ``anyio.Lock``: on asyncio every acquire and release asks for the current task
(``asyncio.current_task()``), and each of those checks the process id, a ``getpid()``
system call on Linux, and an acquire yields to the event loop: three system calls and a
loop turn per message, for a lock that is almost never contended. :class:`Gate` is a flag
when nobody waits and a FIFO of ``anyio.Event`` when somebody does, so it behaves the
same on asyncio and trio.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from types import TracebackType

import anyio
import anyio.lowlevel

__all__ = ["Gate", "loop_clock"]


class Gate:
    """A FIFO mutual-exclusion lock for ``async with``; free when uncontended.

    Ownership passes directly to the longest waiter on release. A waiter cancelled after
    ownership was handed to it passes it on, so a cancellation never leaves it held.
    Entering checks for cancellation (a caller already cancelled writes nothing) but, when
    nobody holds the gate, does not yield to the event loop.
    """

    __slots__ = ("_held", "_waiters")

    def __init__(self) -> None:
        self._held = False
        self._waiters: deque[anyio.Event] = deque()

    def locked(self) -> bool:
        """Whether some task holds the gate."""
        return self._held

    async def __aenter__(self) -> None:
        if not self._held:
            await anyio.lowlevel.checkpoint_if_cancelled()
            self._held = True
            return
        event = anyio.Event()
        self._waiters.append(event)
        try:
            await event.wait()
        except BaseException:
            if event.is_set():
                self._release()  # handed over just as we were cancelled: pass it on
            else:
                self._waiters.remove(event)
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release()

    def _release(self) -> None:
        if self._waiters:
            self._waiters.popleft().set()  # still held: it belongs to that waiter now
        else:
            self._held = False


def loop_clock() -> Callable[[], float]:
    """anyio's clock, taken straight from the asyncio loop when that is the backend.

    ``anyio.current_time()`` looks the loop up on every call (a ``getpid()`` each time on
    asyncio); the loop's bound ``time`` method is the same clock without the lookup.
    """
    try:
        return asyncio.get_running_loop().time
    except RuntimeError:  # not asyncio: trio, or another backend
        return anyio.current_time
