"""The production topology without a broker, in the spirit of Kafka Streams' TopologyTestDriver.

The driver is the broker and the worker's loop, in memory: every topic is a list of
partition logs, records are placed by Kafka's default partitioner (murmur2 of the key, as
the worker's outbox and the platform's producers place them), and the topology handles
each partition's unread records in offset order, in batches, as the worker's consumer
hands them over. Internal records (phone-events, campaign-events) go round through their
logs exactly as they go round through the broker; the timers (partials, stats) run when
asked. Stores are whatever mappings the topology was given, written through (a batch
never fails here, so there is nothing to hold back); a ``PartitionStore`` is scoped to the
batch's partition, as the worker's table is (one database per partition), so a record
routed to the wrong partition does not find its state there.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from typing import Any, NamedTuple

from .partitioner import Partitioner, partition_for
from .topology import Topology


class LogRecord(NamedTuple):
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


class PartitionStore(MutableMapping[str, Any]):
    """States kept per partition: a batch reads and writes its own partition's only (the
    driver sets ``partition`` around each batch); iteration sees every partition's (recovery
    scans them, as the worker's tables are restored). With ``encode``/``decode`` it holds
    the bytes the worker's table would, so every read decodes a state."""

    def __init__(self, encode: Callable[[Any], bytes] | None = None, decode: Callable[[bytes], Any] | None = None):
        self.parts: dict[int, dict[str, Any]] = {}
        self.partition: int | None = None
        self.encode, self.decode = encode, decode

    def _part(self) -> dict[str, Any]:
        if self.partition is None:
            raise RuntimeError("a state read or written outside of a batch")
        part = self.parts.get(self.partition)
        if part is None:
            part = self.parts[self.partition] = {}
        return part

    def __getitem__(self, key: str) -> Any:
        v = self._part()[key]
        return v if self.decode is None else self.decode(v)

    def __setitem__(self, key: str, value: Any) -> None:
        self._part()[key] = value if self.encode is None else self.encode(value)

    def __delitem__(self, key: str) -> None:
        del self._part()[key]

    def __iter__(self) -> Iterator[str]:
        for part in self.parts.values():
            yield from part

    def __len__(self) -> int:
        return sum(len(part) for part in self.parts.values())

    def values(self) -> Iterator[Any]:  # type: ignore[override]  # every partition's
        decode = self.decode
        for part in self.parts.values():
            for v in part.values():
                yield v if decode is None else decode(v)

    def items(self) -> Iterator[tuple[str, Any]]:  # type: ignore[override]  # every partition's
        decode = self.decode
        for part in self.parts.values():
            for k, v in part.items():
                yield k, (v if decode is None else decode(v))


class Driver:
    def __init__(
        self,
        topology: Topology,
        partitions: Mapping[str, int],
        default_partitions: int = 1,
        clock: Callable[[], int] | None = None,
        max_batch: int = 500,
    ):
        """``partitions``: the partition count of each topic (``default_partitions`` for the
        others); ``clock``: processing time in ms for the partial timer (default: a counter)."""
        self.topology = topology
        self.partitions = dict(partitions)
        self.default_partitions = default_partitions
        self.clock = clock or itertools.count(1).__next__
        self.max_batch = max_batch
        self.logs: dict[str, list[list[LogRecord]]] = {}
        self.positions: dict[tuple[str, int], int] = {}  # next offset the worker handles, per partition
        self._stats_s = 0.0  # the stats timer's monotonic clock

    # -- the broker ----------------------------------------------------------------
    def _log(self, topic: str) -> list[list[LogRecord]]:
        log = self.logs.get(topic)
        if log is None:
            log = self.logs[topic] = [[] for _ in range(self.partitions.get(topic, self.default_partitions))]
        return log

    def produce(self, topic: str, key: bytes | None, value: bytes, place: Partitioner | None = None) -> LogRecord:
        """Append a record where Kafka's default partitioner puts it (no key: partition 0),
        or where ``place(key, partitions)`` does (a producer with another partitioner)."""
        log = self._log(topic)
        p = 0 if key is None else (place or partition_for)(key, len(log))
        rec = LogRecord(topic, p, len(log[p]), key, value)
        log[p].append(rec)
        return rec

    def records(self, topic: str) -> list[LogRecord]:
        """Every record of ``topic``, partition by partition, in offset order."""
        return [rec for part in self._log(topic) for rec in part]

    def end_offsets(self, topics: Iterable[str]) -> dict[str, list[int]]:
        return {t: [len(part) for part in self._log(t)] for t in topics}

    def truncate(self, ends: Mapping[str, list[int]]) -> None:
        """Lose what was written after ``ends`` (e.g. outputs a crash never delivered)."""
        for topic, offsets in ends.items():
            for part, end in zip(self._log(topic), offsets, strict=True):
                del part[end:]

    # -- the worker ----------------------------------------------------------------
    def send(self, topic: str, key: bytes | None, value: bytes, place: Partitioner | None = None) -> None:
        """A producer writes to an input topic, and the worker handles the record at once."""
        rec = self.produce(topic, key, value, place)
        self._handle(topic, rec.partition, [rec])
        self.positions[(topic, rec.partition)] = rec.offset + 1

    def _handle(self, topic: str, partition: int, records: list[LogRecord]) -> None:
        route = self.topology.routes[topic]
        store = None if route.store is None else getattr(self.topology.stores, route.store)
        if not isinstance(store, PartitionStore):
            route.process(partition, records, self.produce)
            return
        store.partition = partition
        try:
            route.process(partition, records, self.produce)
        finally:
            store.partition = None

    def poll(self) -> int:
        """Handle every unread record of the topology's topics, one partition's batch at a
        time, until none is left; how many were handled."""
        handled = 0
        while True:
            before = handled
            for topic in self.topology.routes:
                for p, part in enumerate(self._log(topic)):
                    start = self.positions.get((topic, p), 0)
                    while start < len(part):
                        batch = part[start : start + self.max_batch]
                        self._handle(topic, p, batch)
                        start = self.positions[(topic, p)] = start + len(batch)
                        handled += len(batch)
            if handled == before:
                return handled

    def flush_partials(self) -> int:
        """The partial timer's tick; how many partials it produced."""
        n = 0
        for flush in self.topology.flush_partials(self.clock()):
            self.topology.emit(flush.outs, self.produce)
            n += len(flush.outs)
        return n

    def publish_stats(self) -> int:
        """The stats timer's tick, a long while after the previous one: every dirty campaign is due."""
        topology, n = self.topology, 0
        self._stats_s += 10**6
        for cid in topology.take_due_stats(self._stats_s):
            out = topology.stats_record(cid)
            if out is not None:
                self.produce(topology.names.campaign_stats, *out)
                n += 1
        return n

    def drain(self) -> None:
        """Run until quiet: every log read, every partial flushed and folded, stats published."""
        while self.poll() + self.flush_partials():
            pass
        self.publish_stats()

    def restart(self) -> None:
        """A worker restart on the same stores and logs: every stage forgotten, then rebuilt
        from the stores for all partitions, as recovery does (positions are kept: what the
        worker handled since its last commit is for the caller to deliver again)."""
        t = self.topology
        t.revoke()
        names = t.names
        t.rebuild_messages(range(len(self._log(names.message_sent))))
        t.rebuild_phones(range(len(self._log(names.phone_events))))
        t.rebuild_campaigns(range(len(self._log(names.campaign_events))))
