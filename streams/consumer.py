"""Faust's consumer, handing whole fetched batches of smstally's topics to the pipeline.

Two reasons to replace Faust's record loop (``Consumer._drain_messages``) for our topics:

* **Speed.** Faust moves every record through a conductor, a channel queue and a stream
  (measured ~4-5k records/s on 2 cores, whatever the agent does). The records of one
  fetch for one partition arrive here as a list and go to one handler call.
* **No skipped offsets.** Faust marks a record "read" even when a rebalance cancels its
  delivery, and relies on a seek to the committed offset after the rebalance to fetch it
  again. When a second rebalance cuts that seek short, the fetcher resumes past records
  that were never processed, and Faust's gap handling then commits over them: a loss
  (measured in the crash test, about one run in ten). Here the next expected offset of
  every partition is known; a batch that starts later than it makes the consumer seek
  back to it instead. Only if the re-fetch from there still starts later is the gap
  accepted as real (Kafka: transaction markers, compaction).

Everything else is Faust's: group membership, the rebalance protocol, table recovery from
changelogs (changelog records still take Faust's per-record path), commits (of the offsets
this module reports as processed), the web server.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable, Mapping, Sequence

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer
from faust.types import TP

log = logging.getLogger("smstally")

BatchHandler = Callable[[TP, Sequence[Any]], Awaitable[None]]


class _InFlight:
    """Stands for a batch being handled in Faust's set of unacknowledged messages.

    A rebalance waits until that set is empty before it commits and revokes partitions,
    so a batch is never cut in half by a revocation (the stages it writes to are
    rebuilt after every rebalance).
    """

    acked = False
    refcount = 1


class _ConsumerThread(AIOKafkaConsumerThread):
    """Faust's consumer thread, with our fetch wait instead of its hard-coded 1500 ms.

    The wait bounds how long a fetch may be held when there is nothing new. Kafka answers
    as soon as data arrives, so it only paces idle polling; the embedded broker answers at
    the end of the wait (streams/compat/tansu.py), so every hop through an internal topic
    would cost up to that long.
    """

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        wait = getattr(self.consumer, "fetch_max_wait_ms", None)
        if wait is not None:
            consumer._fetch_max_wait_ms = wait
        return consumer


class BatchConsumer(AIOKafkaConsumer):
    handlers: Mapping[str, BatchHandler] = {}  # topic name -> handler; set by ``with_handlers``
    on_error: Callable[[TP], None] = staticmethod(lambda tp: None)
    fetch_max_wait_ms: int | None = None  # None: Faust's
    retry_delay_s = 1.0
    stall_s = 5.0  # a partition with records beyond its next offset and no progress this long is re-sought

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._next: dict[TP, int] = {}  # next offset to process, per batch-handled partition
        self._jump: dict[TP, tuple[int, int]] = {}  # (expected, found) of the last seek back
        self._still: dict[TP, tuple[int, float]] = {}  # next offset, and since when it has not moved
        self._next_check = 0.0
        self._restored: dict[TP, int] = {}  # next offset the restored state needs, per partition

    @classmethod
    def with_handlers(cls, handlers: Mapping[str, BatchHandler], on_error: Callable[[TP], None] | None = None,
                      fetch_max_wait_ms: int | None = None) -> type["BatchConsumer"]:
        attrs: dict[str, Any] = {"handlers": dict(handlers), "fetch_max_wait_ms": fetch_max_wait_ms}
        if on_error is not None:
            attrs["on_error"] = staticmethod(on_error)
        return type(cls.__name__, (cls,), attrs)

    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    # -- positions ----------------------------------------------------------------
    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        for tp in revoked:
            self._next.pop(tp, None)
            self._jump.pop(tp, None)
        await super().on_partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        self._next.clear()  # positions are only known again after the seek to committed
        self._jump.clear()
        self._still.clear()
        self._restored.clear()  # told again by the recovery of this assignment
        await super().on_partitions_assigned(assigned, generation_id)

    def restored_up_to(self, tp: TP, next_offset: int) -> None:
        """Say, after a table recovery, from which offset of ``tp`` the restored state needs
        its input (the progress mark + 1, or 0 when the state holds none of it)."""
        self._restored[tp] = next_offset

    async def perform_seek(self) -> None:
        """Faust's seek to the committed offsets, which also become the next to process, or
        back to where the restored state ends when that is earlier.

        A commit only follows the changelog writes of what it covers, so a state behind its
        commit means the restore missed part of the changelog: replaying from the state's own
        mark (folds skip what they already hold) is what keeps that from losing counts.
        """
        committed = await self.seek_to_committed()
        for tp, offset in committed.items():
            known = offset is not None and offset >= 0
            self._read_offset[tp] = offset if known else None
            if offset:
                self._committed_offset[tp] = offset
            if known and tp.topic in self.handlers:
                restored = self._restored.get(tp)
                if restored is not None and restored < offset:
                    log.warning("%s[%d]: the restored state reflects offsets before %d only, but %d is "
                                "committed; replaying from %d", tp.topic, tp.partition, restored, offset, restored)
                    await self.seek(tp, restored)
                else:
                    self._next[tp] = offset

    async def seek(self, partition: TP, offset: int) -> None:
        """Seek in the consumer thread. Faust's ``seek`` calls aiokafka's from the event loop
        thread, which wakes the fetcher's future of the other thread's loop unsafely: the
        fetcher then stalled on other partitions (seen in the crash test, 120 s without a
        record after a seek back)."""
        ak = self._thread._ensure_consumer()
        await self._thread.call_thread(ak.seek, partition, offset)
        self._read_offset[partition] = offset if offset else None
        if partition.topic in self.handlers:
            self._next[partition] = offset

    async def _committed(self, tp: TP) -> int | None:
        ak = self._thread._ensure_consumer()
        return await self._thread.call_thread(ak.committed, tp)

    async def _contiguous(self, tp: TP, records: Sequence[Any]) -> Sequence[Any]:
        """The records of ``records`` not processed yet, or none if some were skipped."""
        expected = self._next.get(tp)
        if expected is None:
            expected = await self._committed(tp)
            if expected is None:  # nothing committed: the fetcher started where auto_offset_reset says
                return records
            self._next[tp] = expected
        first = records[0].offset
        if first > expected:
            if self._jump.get(tp) == (expected, first):
                log.info("%s[%d]: no records between %d and %d (a real gap in the log)",
                         tp.topic, tp.partition, expected, first)
            else:
                log.warning("%s[%d]: fetched from %d but %d is the next to process; seeking back",
                            tp.topic, tp.partition, first, expected)
                self._jump[tp] = (expected, first)
                await self.seek(tp, expected)
                return ()
        elif records[-1].offset < expected:
            return ()
        elif first < expected:
            records = [r for r in records if r.offset >= expected]
        return records

    def _processed(self, tp: TP, last: int, n: int) -> None:
        self._next[tp] = last + 1
        self._read_offset[tp] = last
        self._acked[tp]  # noqa: B018 - commit() looks for partitions to commit among _acked's keys
        self._n_acked += n

    def next_offset(self, tp: TP) -> int | None:
        """The next offset to process on a batch-handled partition; None until known."""
        return self._next.get(tp)

    def _new_offset(self, tp: TP) -> int | None:
        if tp.topic in self.handlers:
            return self._next.get(tp)
        return super()._new_offset(tp)

    async def _unstick(self) -> None:
        """Seek back a partition whose fetch position went past records it never processed.

        The guard in ``_contiguous`` sees a skip only when a later record arrives; records
        dropped across a rebalance (a generation change mid-batch) with nothing after them
        would otherwise wait for new traffic. Checked once a second: records known beyond
        the next offset (the fetch high watermark), no progress for ``stall_s``.
        """
        now = time.monotonic()
        if now < self._next_check:
            return
        self._next_check = now + 1.0
        active = self._get_active_partitions()
        for tp, nxt in list(self._next.items()):
            hw = self.highwater(tp)
            if hw is None or hw <= nxt or tp not in active:
                self._still.pop(tp, None)
                continue
            seen = self._still.get(tp)
            if seen is None or seen[0] != nxt:
                self._still[tp] = (nxt, now)
            elif now - seen[1] >= self.stall_s:
                log.warning("%s[%d]: no progress from %d for %.0f s with records up to %d; seeking back",
                            tp.topic, tp.partition, nxt, now - seen[1], hw)
                self._still.pop(tp, None)
                await self.seek(tp, nxt)

    # -- the record loop ----------------------------------------------------------
    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - run by the Fetcher service
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        handlers = self.handlers
        commit_every = self._commit_every
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                records, active = await self._wait_next_records(1.0)
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
                        await self.perform_seek()
                    except Exception as exc:  # noqa: BLE001 - the next assignment seeks again
                        log.info("seek to committed offsets while paused failed: %r", exc)
                    continue
                generation = self.app.consumer_generation_id
                for tp, batch in records.items():
                    if not self.flow_active or self.app.consumer_generation_id != generation:
                        break
                    if active is not None and tp not in active and tp not in self._buffered_partitions:
                        continue
                    handler = handlers.get(tp.topic)
                    if handler is None:
                        await self._deliver_each(tp, batch)
                        continue
                    try:
                        batch = await self._contiguous(tp, batch)
                    except Exception as exc:  # noqa: BLE001 - e.g. revoked meanwhile; the guard re-checks
                        log.info("%s[%d]: position check failed (%r); batch left for a re-read",
                                 tp.topic, tp.partition, exc)
                        continue
                    if not batch:
                        continue
                    token = _InFlight()
                    self._unacked_messages.add(token)
                    try:
                        await handler(tp, batch)
                        self._processed(tp, batch[-1].offset, len(batch))
                    except Exception:  # noqa: BLE001 - a bug: retry the batch, never skip it
                        log.exception("handling %s[%d] offsets %d..%d failed; retrying in %.0f s",
                                      tp.topic, tp.partition, batch[0].offset, batch[-1].offset, self.retry_delay_s)
                        self.on_error(tp)
                        try:
                            await self.seek(tp, batch[0].offset)
                        except Exception as exc:  # noqa: BLE001 - revoked: its next owner re-reads it
                            log.info("seek back on %s[%d] failed: %r", tp.topic, tp.partition, exc)
                        await self.sleep(self.retry_delay_s)
                    finally:
                        token.acked = True
                        self._unacked_messages.discard(token)
                    if commit_every is not None and self._n_acked >= commit_every:
                        self._n_acked = 0
                        await self.commit()
        except (asyncio.CancelledError, *self.consumer_stopped_errors):
            if self.transport.app.should_stop:  # stopping: what Faust's loop does too
                return
            raise

    async def _deliver_each(self, tp: TP, records: Sequence[Any]) -> None:
        """Faust's own per-record delivery (changelogs during recovery, other topics)."""
        read_offset = self._read_offset
        for record in records:
            message = self._to_message(tp, record)
            offset = message.offset
            r_offset = read_offset.get(tp)
            if r_offset is not None and offset < r_offset:
                continue  # already delivered
            if r_offset and offset - r_offset > 1 and self.app.topics.acks_enabled_for(message.topic):
                await self._add_gap(tp, r_offset + 1, offset)
            await self.wait_first(self.callback(message), self.suspend_flow.wait())
            read_offset[tp] = offset
