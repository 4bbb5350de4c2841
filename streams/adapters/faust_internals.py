"""faust-streaming private names smstally uses. Checked with faust-streaming 0.15.3 (see
:mod:`streams.adapters.versions`); each is tested in ``tests/test_library_internals.py``.

Design: Faust has no public hook for a consumer that handles whole fetched batches, so
:class:`BatchConsumerBase` is Faust's aiokafka ``Consumer`` with every private it needs
turned into a well-named method; ``streams.consumer.BatchConsumer`` subclasses it and uses
only those methods (and Faust's public ones). The private methods it overrides call
public-named hooks that the subclass implements.

Overridden private methods (on ``faust.transport.drivers.aiokafka.Consumer`` / ``ConsumerThread``):

* ``Consumer._drain_messages(fetcher)``: Faust's record loop, run by its Fetcher service.
  Replaced by :meth:`BatchConsumerBase.record_loop` (the batch loop: speed, and no skipped
  offsets; see ``streams.consumer``).
* ``Consumer._new_offset(tp)``: the offset Faust commits for ``tp``. For batch-handled
  partitions it is what the offset guard says was processed (:meth:`BatchConsumerBase.owns_offsets`,
  :meth:`BatchConsumerBase.offset_to_commit`); Faust's own (acked offsets and gaps) otherwise.
* ``Consumer._new_consumer_thread()``: to use :class:`FetchWaitConsumerThread`.
* ``AIOKafkaConsumerThread._create_worker_consumer(transport)``: the factory of the
  aiokafka consumer; wrapped to set our fetch wait on it (Faust hard-codes 1500 ms).

Private attributes and methods read or written (on the ``Consumer`` unless said):

* ``_thread`` (the consumer thread) and ``AIOKafkaConsumerThread._ensure_consumer()``: the
  aiokafka consumer, for seeks and committed offsets done in its own thread
  (:meth:`BatchConsumerBase.aiokafka_consumer`, :meth:`BatchConsumerBase.in_consumer_thread`).
* ``_read_offset`` and ``_committed_offset`` (defaultdicts TP -> offset or None): Faust's
  view of the last read and the last committed offset. Kept in step with our seeks and
  processed batches as Faust's loop would, and read by readiness and the debug page
  (:func:`read_offset`, :func:`committed_offset`, :meth:`BatchConsumerBase.set_read_offset`, ...).
* ``_acked`` (defaultdict TP -> list) and ``_n_acked`` (int): ``commit()`` looks for the
  partitions to commit among ``_acked``'s keys, and ``broker_commit_every`` counts
  ``_n_acked`` (:meth:`BatchConsumerBase.mark_processed`).
* ``_commit_every`` (int or None): ``broker_commit_every``, as Faust's loop reads it.
* ``_unacked_messages`` (WeakSet): a rebalance waits until it is empty before it commits and
  revokes, so a batch in it is never cut in half (:meth:`BatchConsumerBase.holding_rebalance`).
* ``_wait_next_records(timeout)`` (coroutine -> (records, active partitions)): one fetch.
* ``_buffered_partitions`` (set): partitions Faust delivers to although not active.
* ``_get_active_partitions()``: the partitions not paused by Faust (e.g. during recovery).
* ``_paused_partitions``, ``_active_partitions`` (sets): shown on ``/debug/consumer``.
* ``_to_message(tp, record)`` and ``_add_gap(tp, from, to)`` (coroutine): Faust's
  per-record delivery, kept for changelogs and other topics (:meth:`BatchConsumerBase.deliver_each`).
* ``Producer._ensure_producer()``: the started aiokafka producer, which the outbox sends
  record batches with (:func:`aiokafka_producer`).
* RocksDB ``Store._db_for_partition(partition)`` and ``Store._visible_items(db)``: one
  partition's database, read and written directly by ``streams.stores`` for a batch
  (:func:`partition_db`, :func:`partition_items`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer
from faust.types import TP

from . import aiokafka_internals

if TYPE_CHECKING:
    import aiokafka
    import faust


class InFlight:
    """Stands for a batch being handled in Faust's set of unacknowledged messages (the
    shape Faust's rebalance looks at: ``acked`` and ``refcount``)."""

    acked = False
    refcount = 1


class FetchWaitConsumerThread(AIOKafkaConsumerThread):
    """Faust's consumer thread, with the consumer's ``fetch_max_wait_ms`` (when not None)
    instead of Faust's hard-coded 1500 ms."""

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        wait = getattr(self.consumer, "fetch_max_wait_ms", None)
        if wait is not None:
            aiokafka_internals.set_fetch_max_wait_ms(consumer, wait)
        return consumer


class BatchConsumerBase(AIOKafkaConsumer):
    """Faust's aiokafka consumer with its privates as named methods, and hooks for a batch loop."""

    fetch_max_wait_ms: int | None = None  # None: Faust's

    # -- hooks for the subclass ---------------------------------------------------
    async def record_loop(self, fetcher: Any) -> None:
        """The record loop, run by Faust's Fetcher service until it or the consumer stops."""
        raise NotImplementedError

    def owns_offsets(self, tp: TP) -> bool:
        """Whether :meth:`offset_to_commit` (not Faust) says what to commit for ``tp``."""
        return False

    def offset_to_commit(self, tp: TP) -> int | None:
        """The offset to commit for a partition of :meth:`owns_offsets`; None: nothing new."""
        return None

    # -- the overridden private methods ---------------------------------------------
    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return FetchWaitConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - run by the Fetcher service
        await self.record_loop(fetcher)

    def _new_offset(self, tp: TP) -> int | None:
        if self.owns_offsets(tp):
            return self.offset_to_commit(tp)
        new: int | None = super()._new_offset(tp)
        return new

    # -- the aiokafka consumer ------------------------------------------------------
    def aiokafka_consumer(self) -> aiokafka.AIOKafkaConsumer:
        """The running aiokafka consumer (raises Faust's ConsumerNotStarted before it runs)."""
        return aiokafka_consumer(self)

    async def in_consumer_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call ``fn(*args)`` (a coroutine function) in the consumer thread's event loop."""
        return await self._thread.call_thread(fn, *args)

    # -- Faust's offsets ------------------------------------------------------------
    def set_read_offset(self, tp: TP, offset: int | None) -> None:
        self._read_offset[tp] = offset

    def set_committed_offset(self, tp: TP, offset: int) -> None:
        self._committed_offset[tp] = offset

    def mark_processed(self, tp: TP, last: int, n: int) -> None:
        """``n`` records of ``tp`` up to offset ``last`` are processed: what Faust's commit needs."""
        self._read_offset[tp] = last
        self._acked[tp]  # noqa: B018 - commit() looks for partitions to commit among _acked's keys
        self._n_acked += n

    @property
    def commit_every(self) -> int | None:
        """``broker_commit_every``: commit after this many processed records (None: by interval only)."""
        every: int | None = self._commit_every
        return every

    def processed_since_commit(self) -> int:
        n: int = self._n_acked
        return n

    def reset_processed_count(self) -> None:
        self._n_acked = 0

    @contextlib.contextmanager
    def holding_rebalance(self) -> Iterator[None]:
        """A rebalance waits (before it commits and revokes) until the block is left."""
        token = InFlight()
        self._unacked_messages.add(cast(Any, token))
        try:
            yield
        finally:
            token.acked = True
            self._unacked_messages.discard(cast(Any, token))

    # -- fetching -------------------------------------------------------------------
    async def next_records(self, timeout: float) -> tuple[Mapping[TP, Sequence[Any]] | None, set[TP] | None]:
        """One fetch: records per partition (None or empty: none), and the active partitions
        it was made for."""
        records, active = await self._wait_next_records(timeout)
        return records, active

    def buffered_partitions(self) -> set[TP]:
        buffered: set[TP] = self._buffered_partitions
        return buffered

    def current_active_partitions(self) -> set[TP]:
        """The assigned partitions Faust has not paused."""
        active: set[TP] = self._get_active_partitions()
        return active

    async def deliver_each(self, tp: TP, records: Sequence[Any]) -> None:
        """Faust's own per-record delivery (changelogs during recovery, other topics), as
        its ``_drain_messages`` does it."""
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


# -- any Faust consumer (readiness, the debug page) ---------------------------------
def aiokafka_consumer(consumer: Any) -> aiokafka.AIOKafkaConsumer:
    """A Faust aiokafka consumer's running aiokafka consumer."""
    ak: aiokafka.AIOKafkaConsumer = consumer._thread._ensure_consumer()
    return ak


def read_offset(consumer: Any, tp: TP) -> int | None:
    """Faust's last read offset of ``tp`` (after its seek to committed: the committed offset)."""
    offset: int | None = consumer._read_offset.get(tp)
    return offset


def committed_offset(consumer: Any, tp: TP) -> int | None:
    """The last offset of ``tp`` Faust knows to be committed."""
    offset: int | None = consumer._committed_offset.get(tp)
    return offset


def paused_partitions(consumer: Any) -> set[TP]:
    paused: set[TP] = consumer._paused_partitions
    return paused


def active_partitions(consumer: Any) -> set[TP]:
    """The active partitions of the last fetch (empty when unknown)."""
    active: set[TP] = consumer._active_partitions or set()
    return active


# -- the producer -------------------------------------------------------------------
def aiokafka_producer(app: faust.App) -> Callable[[], aiokafka.AIOKafkaProducer]:
    """A function returning the app's started aiokafka producer (Faust starts it after
    the app is built; the function raises Faust's NotReady before that)."""
    producer: Any = app.producer  # faust.transport.drivers.aiokafka.Producer
    ensure: Callable[[], aiokafka.AIOKafkaProducer] = producer._ensure_producer
    return ensure


# -- the RocksDB store ----------------------------------------------------------------
def partition_db(data: Any, partition: int) -> Any:
    """The ``rocksdict.Rdict`` of one partition of a Faust RocksDB store (opened if needed)."""
    return data._db_for_partition(partition)


def partition_items(data: Any, partition: int) -> Iterator[tuple[bytes, bytes]]:
    """The (key, value) items of one partition of a Faust RocksDB store."""
    items: Iterator[tuple[bytes, bytes]] = data._visible_items(data._db_for_partition(partition))
    return items
