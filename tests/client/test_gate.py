"""Gate: the client's lock. Mutual exclusion in FIFO order; cancellation never leaves it held."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import pytest

from smtpsubmit._gate import Gate

pytestmark = pytest.mark.anyio


async def test_waiters_enter_one_at_a_time_in_arrival_order() -> None:
    gate = Gate()
    order: list[int] = []
    inside = 0
    release = anyio.Event()

    async def user(n: int) -> None:
        nonlocal inside
        async with gate:
            inside += 1
            assert inside == 1
            order.append(n)
            if n == 0:
                await release.wait()
            await anyio.lowlevel.checkpoint()
            inside -= 1

    async with anyio.create_task_group() as tg:
        for n in range(4):
            tg.start_soon(user, n)
            await anyio.wait_all_tasks_blocked()  # each one queued before the next starts
        release.set()
    assert order == [0, 1, 2, 3]
    assert not gate.locked()


async def test_a_waiter_cancelled_while_queued_leaves_the_queue() -> None:
    gate = Gate()
    entered: list[str] = []
    scope = anyio.CancelScope()

    async def waiter(name: str) -> None:
        async with gate:
            entered.append(name)

    async def cancellable() -> None:
        with scope:
            await waiter("cancelled")

    async with anyio.create_task_group() as tg:
        await gate.__aenter__()
        tg.start_soon(waiter, "second")
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(cancellable)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(waiter, "third")
        await anyio.wait_all_tasks_blocked()
        scope.cancel()
        await anyio.wait_all_tasks_blocked()
        assert entered == []
        await gate.__aexit__(None, None, None)
    assert entered == ["second", "third"]
    assert not gate.locked()


async def test_a_waiter_cancelled_after_the_handover_passes_the_gate_on() -> None:
    gate = Gate()
    entered: list[str] = []
    scope = anyio.CancelScope()

    async def first_waiter() -> None:
        with scope:
            async with gate:
                entered.append("first")

    async def second_waiter() -> None:
        async with gate:
            entered.append("second")

    # A gate left held would hang the task group: fail instead.
    with anyio.fail_after(10):
        await _handover_cancelled(gate, first_waiter, second_waiter, scope)
    assert entered == ["second"]
    assert not gate.locked()


async def _handover_cancelled(
    gate: Gate,
    first_waiter: Callable[[], Awaitable[None]],
    second_waiter: Callable[[], Awaitable[None]],
    scope: anyio.CancelScope,
) -> None:
    async with anyio.create_task_group() as tg:
        await gate.__aenter__()
        tg.start_soon(first_waiter)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(second_waiter)
        await anyio.wait_all_tasks_blocked()
        scope.cancel()  # first_waiter is cancelled, but runs only after...
        await gate.__aexit__(None, None, None)  # ...the gate was handed to it


async def test_an_already_cancelled_caller_does_not_enter() -> None:
    gate = Gate()
    entered = False
    with anyio.CancelScope() as scope:
        scope.cancel()
        async with gate:
            entered = True
    assert not entered
    assert not gate.locked()
