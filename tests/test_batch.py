"""Group commit (store/batch.py) on its own: what arrives while a batch is written goes in the next one,
each writer gets its own result, and a failed batch fails its writers only."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from responder.store.batch import Batcher


class Writes:
    """A write that records its batches and waits for the test to let each one commit."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.started = asyncio.Event()
        self.go = asyncio.Event()
        self.fail_next = False

    async def __call__(self, batch: Sequence[int]) -> list[int]:
        self.batches.append(list(batch))
        self.started.set()
        await self.go.wait()
        self.go.clear()
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("the database went away")
        return [item * 10 for item in batch]

    async def commit(self) -> None:
        """Let the batch being written commit, and wait for the next one to start (if any)."""
        self.started.clear()
        self.go.set()
        await asyncio.sleep(0)


async def test_a_lone_write_goes_at_once_as_a_batch_of_one() -> None:
    writes = Writes()
    batcher = Batcher(writes)
    first = asyncio.create_task(batcher.submit(1))
    await writes.started.wait()
    assert writes.batches == [[1]]
    await writes.commit()
    assert await first == 10


async def test_what_arrives_during_a_write_shares_the_next_transaction() -> None:
    writes = Writes()
    batcher = Batcher(writes)
    first = asyncio.create_task(batcher.submit(1))
    await writes.started.wait()
    waiting = [asyncio.create_task(batcher.submit(n)) for n in (2, 3, 4)]
    await asyncio.sleep(0)
    await writes.commit()
    await writes.started.wait()
    assert writes.batches == [[1], [2, 3, 4]]
    await writes.commit()
    assert [await first, *[await w for w in waiting]] == [10, 20, 30, 40]


async def test_a_failed_batch_fails_its_writers_and_the_next_batch_still_goes() -> None:
    writes = Writes()
    batcher = Batcher(writes)
    writes.fail_next = True
    first = asyncio.create_task(batcher.submit(1))
    await writes.started.wait()
    later = asyncio.create_task(batcher.submit(2))
    await asyncio.sleep(0)
    await writes.commit()
    with pytest.raises(RuntimeError, match="went away"):
        await first
    await writes.started.wait()
    await writes.commit()
    assert await later == 20 and writes.batches == [[1], [2]]


async def test_batches_are_bounded() -> None:
    writes = Writes()
    batcher = Batcher(writes, max_batch=2)
    first = asyncio.create_task(batcher.submit(0))
    await writes.started.wait()
    rest = [asyncio.create_task(batcher.submit(n)) for n in (1, 2, 3)]
    await asyncio.sleep(0)
    await writes.commit()
    await writes.started.wait()  # [1, 2]: two of the three queued
    await writes.commit()
    await writes.started.wait()  # [3]
    await writes.commit()
    assert writes.batches == [[0], [1, 2], [3]]
    assert [await first, *[await r for r in rest]] == [0, 10, 20, 30]
