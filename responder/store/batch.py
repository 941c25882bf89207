"""Group commit: many writers, one transaction.

Writes that carry no decision of their own (a status callback saying "delivered", the answer Twilio gave
to a send) are handed to a `Batcher`. Whatever was handed in while the previous batch was being written
goes into the next one, in one transaction, and each writer is answered when its batch has committed.
Nothing waits on purpose: a lone write goes at once, as a batch of one; under load the batches grow by
themselves, and the commits (on SQLite, the one connection's turns and its syncs) stop growing with
the load.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

MAX_BATCH = 200


class Batcher(Generic[Item, Result]):
    """`await submit(item)` returns `write(batch)`'s result for that item, once its batch committed.

    `write` gets the items in the order they were submitted and returns one result per item. When it
    raises, every writer of that batch gets the error (nothing of the batch was committed).
    """

    def __init__(
        self, write: Callable[[Sequence[Item]], Awaitable[Sequence[Result]]], max_batch: int = MAX_BATCH
    ) -> None:
        self._write, self._max = write, max_batch
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._task is None:
            self._task = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[: self._max], self._waiting[self._max :]
                try:
                    results = await self._write([item for item, _ in batch])
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                except BaseException:  # cancelled (a stop): the writers learn it, then the task ends
                    for _, future in (*batch, *self._waiting):
                        if not future.done():
                            future.cancel()
                    self._waiting = []
                    raise
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._task = None
