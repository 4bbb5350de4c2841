"""Faust's consumer, handing whole fetched batches of smstally's topics to the pipeline.

Two reasons to replace Faust's record loop (``Consumer._drain_messages``, overridden in
``streams.adapters.faust_internals``, which holds every Faust private this module needs) for
our topics:

* **Speed.** Faust moves every record through a conductor, a channel queue and a stream
  (measured ~4-5k records/s on 2 cores, whatever the agent does). The records of one
  fetch for one partition arrive here as a list and go to one handler call.
* **No skipped offsets.** Faust marks a record "read" even when a rebalance cancels its
  delivery, and relies on a seek to the committed offset after the rebalance to fetch it
  again. When a second rebalance cuts that seek short, the fetcher resumes past records
  that were never processed, and Faust's gap handling then commits over them: a loss
  (measured in the crash test, about one run in ten). Here the next expected offset of
  every partition is known (``streams.offset_guard``, a pure class); a batch that starts
  later than it makes the consumer seek back to it instead. Only if the re-fetch from
  there still starts later is the gap accepted as real (Kafka: transaction markers,
  compaction).

Everything else is Faust's: group membership, the rebalance protocol, table recovery from
changelogs (changelog records still take Faust's per-record path), commits (of the offsets
this module reports as processed), the web server.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from faust.types import TP

from .adapters import mode_internals
from .adapters.faust_internals import BatchConsumerBase
from .offset_guard import OffsetGuard

log = logging.getLogger("smstally")

BatchHandler = Callable[[TP, Sequence[Any]], Awaitable[None]]


class BatchConsumer(BatchConsumerBase):
    """The batch consumer. Faust's rebalance waits for a batch being handled
    (``holding_rebalance``), so a batch is never cut in half by a revocation (the stages it
    writes to are rebuilt after every rebalance).

    The fetch wait (``fetch_max_wait_ms``, None: Faust's 1500 ms) bounds how long a fetch
    may be held when there is nothing new. Kafka answers as soon as data arrives, so it
    only paces idle polling; the embedded broker answers at the end of the wait
    (streams/compat/tansu.py), so every hop through an internal topic would cost up to that long.
    """

    handlers: Mapping[str, BatchHandler] = {}  # topic name -> handler; set by ``with_handlers``
    on_error: Callable[[TP], None] = staticmethod(lambda tp: None)
    retry_delay_s = 1.0
    stall_s = 5.0  # a partition with records beyond its next offset and no progress this long is re-sought

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guard: OffsetGuard[TP] = OffsetGuard(self.stall_s)
        #: From an assignment until its seek to the committed offsets has completed: until then
        #: no position says how far the restored state is from the log (see ``readiness``).
        self.seek_pending = True

    @classmethod
    def with_handlers(
        cls,
        handlers: Mapping[str, BatchHandler],
        on_error: Callable[[TP], None] | None = None,
        fetch_max_wait_ms: int | None = None,
    ) -> type[BatchConsumer]:
        attrs: dict[str, Any] = {"handlers": dict(handlers), "fetch_max_wait_ms": fetch_max_wait_ms}
        if on_error is not None:
            attrs["on_error"] = staticmethod(on_error)
        return type(cls.__name__, (cls,), attrs)

    # -- positions ----------------------------------------------------------------
    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        self.guard.revoked(revoked)
        await super().on_partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        self.guard.assigned()
        self.seek_pending = True
        await super().on_partitions_assigned(assigned, generation_id)

    def restored_up_to(self, tp: TP, next_offset: int) -> None:
        """Say, after a table recovery, from which offset of ``tp`` the restored state needs
        its input (the progress mark + 1, or 0 when the state holds none of it)."""
        self.guard.restored_up_to(tp, next_offset)

    async def perform_seek(self) -> None:
        """Faust's seek to the committed offsets, which also become the next to process, or
        back to where the restored state ends when that is earlier.

        A commit only follows the changelog writes of what it covers, so a state behind its
        commit means the restore missed part of the changelog: replaying from the state's own
        mark (folds skip what they already hold) is what keeps that from losing counts.

        A partition of ours with nothing committed (or 0) is sought to the start of its log
        explicitly: aiokafka seeks only to a committed offset above 0, so records fetched
        before this seek (across a rebalance) and then dropped would otherwise stay behind
        the fetch position, and nothing would say where processing must start (crash test,
        12-02: "sms.unsubscribes[1]": "0/2" for ever). Its next offset is then known, so the
        guard and the stall check cover it like any other.

        Called by Faust's recovery once the tables are restored (and their marks told):
        only then are the positions it sets meaningful for readiness (``seek_pending``).
        """
        await self._seek_committed()
        self.seek_pending = False

    async def _seek_committed(self) -> None:
        committed = await self.seek_to_committed()
        unsought = [tp for tp, offset in committed.items() if tp.topic in self.handlers and not (offset and offset > 0)]
        starts = await self.log_starts(unsought) if unsought else {}
        for tp, offset in committed.items():
            known = offset is not None and offset >= 0
            self.set_read_offset(tp, offset if known else None)
            if offset:
                self.set_committed_offset(tp, offset)
            if tp.topic not in self.handlers:
                continue
            if tp in starts:
                offset = offset if known else starts[tp]
                await self.seek(tp, offset)
            if offset is not None and offset >= 0:
                await self._resume(tp, offset)

    async def _resume(self, tp: TP, offset: int) -> None:
        """Processing of ``tp`` goes on from ``offset`` (its commit, or its log start), or from
        where the restored state ends when that is earlier."""
        restored = self.guard.committed(tp, offset)
        if restored is not None:
            log.warning(
                "%s[%d]: the restored state reflects offsets before %d only, but %d is committed; replaying from %d",
                tp.topic,
                tp.partition,
                restored,
                offset,
                restored,
            )
            await self.seek(tp, restored)

    async def log_starts(self, tps: Sequence[TP]) -> dict[TP, int]:
        """The first offset still in each partition's log: where ``auto_offset_reset``
        ("earliest") starts a partition with nothing committed."""
        ak = self.aiokafka_consumer()
        starts: Mapping[Any, int] = await self.in_consumer_thread(ak.beginning_offsets, list(tps))
        return {TP(tp.topic, tp.partition): offset for tp, offset in starts.items()}

    async def seek(self, partition: TP, offset: int) -> None:
        """Seek in the consumer thread. Faust's ``seek`` calls aiokafka's from the event loop
        thread, which wakes the fetcher's future of the other thread's loop unsafely: the
        fetcher then stalled on other partitions (seen in the crash test, 120 s without a
        record after a seek back)."""
        ak = self.aiokafka_consumer()
        await self.in_consumer_thread(ak.seek, partition, offset)
        self.set_read_offset(partition, offset if offset else None)
        if partition.topic in self.handlers:
            self.guard.sought(partition, offset)

    async def learn_next_offset(self, tp: TP) -> int | None:
        """The next offset to process on ``tp``. When neither a seek nor a batch has told it
        yet (the seek after recovery was cut short by another rebalance), it is found as that
        seek would have: the committed offset asked of the group coordinator (the start of
        the log when nothing is committed), or where the restored state ends when that is
        earlier, and then sought to. None only while the broker cannot say.

        Taking the committed offset alone once let a state restored behind its commit pass
        for caught up: its stats went out with an older version than already published
        (crash test, 12-02: "stats version went back from 322 to 230"), and the records
        between would not have been folded again.
        """
        if self.guard.next_offset(tp) is None:
            expected = await self._committed(tp)
            if expected is None or expected < 0:
                expected = (await self.log_starts([tp])).get(tp)
            if expected is not None and self.guard.next_offset(tp) is None:
                await self._resume(tp, expected)
        return self.guard.next_offset(tp)

    async def _committed(self, tp: TP) -> int | None:
        ak = self.aiokafka_consumer()
        committed: int | None = await self.in_consumer_thread(ak.committed, tp)
        return committed

    async def _contiguous(self, tp: TP, records: Sequence[Any]) -> Sequence[Any]:
        """The records of ``records`` not processed yet, or none if some were skipped."""
        if await self.learn_next_offset(tp) is None:
            return records  # the broker could not say: the fetcher's position is all there is
        records, seek_to = self.guard.admit(tp, records)
        if seek_to is not None:
            await self.seek(tp, seek_to)
        return records

    def _processed(self, tp: TP, last: int, n: int) -> None:
        self.guard.processed(tp, last)
        self.mark_processed(tp, last, n)

    def next_offset(self, tp: TP) -> int | None:
        """The next offset to process on a batch-handled partition; None until known."""
        return self.guard.next_offset(tp)

    def owns_offsets(self, tp: TP) -> bool:
        return tp.topic in self.handlers

    def offset_to_commit(self, tp: TP) -> int | None:
        return self.guard.next_offset(tp)

    async def _unstick(self) -> None:
        """Seek back a partition whose fetch position went past records it never processed.

        The guard in ``_contiguous`` sees a skip only when a later record arrives; records
        dropped across a rebalance (a generation change mid-batch) with nothing after them
        would otherwise wait for new traffic. Checked once a second: records known beyond
        the next offset (the fetch high watermark), no progress for ``stall_s``.
        """
        now = time.monotonic()
        if not self.guard.check_due(now):
            return
        for stall in self.guard.stalls(now, self.current_active_partitions(), self.highwater):
            tp = stall.tp
            log.warning(
                "%s[%d]: no progress from %d for %.0f s with records up to %d; seeking back",
                tp.topic,
                tp.partition,
                stall.next_offset,
                stall.seconds,
                stall.highwater,
            )
            await self.seek(tp, stall.next_offset)

    # -- the record loop ----------------------------------------------------------
    async def record_loop(self, fetcher: Any) -> None:  # pragma: no cover - run by the Fetcher service
        consumer_stopped = mode_internals.stop_requested(self)
        fetcher_stopped = mode_internals.stop_requested(fetcher)
        handlers = self.handlers
        commit_every = self.commit_every
        stopping: tuple[type[BaseException], ...] = (asyncio.CancelledError, *self.consumer_stopped_errors)
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                records, active = await self.next_records(1.0)
                await self.sleep(0)
                if self.flow_active and not self.should_stop:
                    try:
                        await self._unstick()
                    except Exception as exc:  # noqa: BLE001 - e.g. revoked meanwhile: checked again
                        log.info("stall check failed: %r", exc)
                if not records or self.should_stop:
                    continue
                if not self.flow_active:  # fetched across a rebalance: stale, re-read from committed
                    try:
                        await self._seek_committed()  # recovery's own seek follows
                    except Exception as exc:  # noqa: BLE001 - the next assignment seeks again
                        log.info("seek to committed offsets while paused failed: %r", exc)
                    continue
                generation = self.app.consumer_generation_id
                for tp, batch in records.items():
                    if not self.flow_active or self.app.consumer_generation_id != generation:
                        break
                    if active is not None and tp not in active and tp not in self.buffered_partitions():
                        continue
                    handler = handlers.get(tp.topic)
                    if handler is None:
                        await self.deliver_each(tp, batch)
                        continue
                    try:
                        batch = await self._contiguous(tp, batch)
                    except Exception as exc:  # noqa: BLE001 - e.g. revoked meanwhile; the guard re-checks
                        log.info(
                            "%s[%d]: position check failed (%r); batch left for a re-read", tp.topic, tp.partition, exc
                        )
                        continue
                    if not batch:
                        continue
                    with self.holding_rebalance():
                        try:
                            await handler(tp, batch)
                            self._processed(tp, batch[-1].offset, len(batch))
                        except Exception:  # noqa: BLE001 - a bug: retry the batch, never skip it
                            log.exception(
                                "handling %s[%d] offsets %d..%d failed; retrying in %.0f s",
                                tp.topic,
                                tp.partition,
                                batch[0].offset,
                                batch[-1].offset,
                                self.retry_delay_s,
                            )
                            self.on_error(tp)
                            try:
                                await self.seek(tp, batch[0].offset)
                            except Exception as exc:  # noqa: BLE001 - revoked: its next owner re-reads it
                                log.info("seek back on %s[%d] failed: %r", tp.topic, tp.partition, exc)
                            await self.sleep(self.retry_delay_s)
                    if commit_every is not None and self.processed_since_commit() >= commit_every:
                        self.reset_processed_count()
                        await self.commit()
        except stopping:
            if self.transport.app.should_stop:  # stopping: what Faust's loop does too
                return
            raise
