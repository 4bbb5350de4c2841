"""A Faust table seen as a plain mapping of domain states, so stages never import Faust.

Writes are held for the batch being handled and written once per key at its end: to the
local store, and to the changelog through the batch's outbox (so Faust's commit, which
flushes the producer first, covers them). A message sent and receipted in one batch
costs one changelog record, not two, and nothing goes through Faust's per-write path.
Reads see the held writes first.

Keys are bytes on both paths (live writes and changelog recovery) so that the memory store
and RocksDB agree; values are the stage codecs' bytes.

Each batch also writes a *progress mark*: the last input offset it folded (then the writer:
process id and group generation), after its states and through the same changelog. A table
restored from its changelog thus knows which input it reflects, whatever the committed
offset says: if the restore stopped short (or the changelog lost its tail), the mark is
behind the commit and the pipeline replays from it (the Kafka Streams checkpoint, kept in
the store itself).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

from faust.types import TP
from rocksdict import WriteBatch

from .adapters import faust_internals
from .outbox import Outbox

_MISSING = object()
log = logging.getLogger("smstally")

#: Progress marks live in the table beside the states. State keys are UTF-8 encoded ids,
#: which never contain the byte 0xFF, so no id can collide with a mark.
MARK_PREFIX = b"\xffprogress\x00"


def mark_key(topic: str, partition: int) -> bytes:
    return b"%s%s\x00%d" % (MARK_PREFIX, topic.encode(), partition)


class TableStore(MutableMapping[str, Any]):
    def __init__(
        self,
        table: Any,
        encode: Callable[[Any], bytes],
        decode: Callable[[bytes], Any],
        writer: Callable[[], bytes] = lambda: b"",
    ):
        self.table = table
        self.writer = writer  # who wrote a mark (process, group generation): for post-mortems
        self.encode = encode
        self.decode = decode
        self.pending: dict[str, Any] = {}
        self._db: Any = None  # the batch's partition database, inside ``for_batch``

    @contextlib.contextmanager
    def for_batch(self, partition: int) -> Iterator[None]:
        """Reads and writes of one batch go straight to its partition's RocksDB (Faust's
        store would look up a current event, encode keys and update an LRU per access, and
        batches run outside Faust's streams). Only for the batch: a rebalance closes the
        databases of revoked partitions."""
        if self.partitioned:
            self._db = faust_internals.partition_db(self.table.data, partition)
        try:
            yield
        finally:
            self._db = None

    def get(self, key: str, default: Any = None) -> Any:
        value = self.pending.get(key, _MISSING)
        if value is not _MISSING:
            return value
        db = self._db
        raw = self.table.data.get(key.encode()) if db is None else db.get(key.encode())
        return default if raw is None else self.decode(raw)

    def __getitem__(self, key: str) -> Any:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        self.pending[key] = value

    def __delitem__(self, key: str) -> None:
        raise NotImplementedError("states are never deleted: a changelog tombstone would lose history")

    def progress(self, topic: str, partition: int) -> int | None:
        """The last offset of ``topic[partition]`` the stored states reflect; None: none."""
        key = mark_key(topic, partition)
        raw = self.table.data.get(key)
        return None if raw is None else int(raw.split(b" ", 1)[0])

    def flush(self, outbox: Outbox, tp: TP, last_offset: int) -> None:
        """Write the held states, then the batch's progress mark (``tp`` folded up to
        ``last_offset``), inside ``for_batch``: RocksDB gets one write batch, the changelog
        the same records in the same order, so any prefix of it that holds a mark holds every
        state of that mark's batch. Every batch writes its mark, even one that changed no state."""
        changelog = self.table.changelog_topic.get_topic_name()
        outbox.on_delivered(changelog, self._persisted)
        writes = None if self._db is None else WriteBatch(raw_mode=True)
        put = self.table.data.__setitem__ if writes is None else writes.put
        add, encode, partition = outbox.add, self.encode, tp.partition
        records = [(key.encode(), encode(value)) for key, value in self.pending.items()]
        records.append((mark_key(tp.topic, partition), b"%d %s" % (last_offset, self.writer())))
        for k, raw in records:
            put(k, raw)
            add(changelog, k, raw, partition)
        if writes is not None:
            self._db.write(writes)
        self.pending.clear()

    def _persisted(self, partition: int, offset: int) -> None:
        """What Faust does when one of its own changelog writes is acknowledged: remember the
        offset in the local store, so a restart on this data directory reads the changelog
        from there rather than from the beginning."""
        tp = TP(self.table.changelog_topic.get_topic_name(), partition)
        try:
            self.table.data.set_persisted_offset(tp, offset)
        except Exception as exc:  # noqa: BLE001 - store closed by a rebalance: it re-reads more
            log.info("could not record changelog offset %s@%d: %r", tp, offset, exc)

    def discard_pending(self) -> None:
        self.pending.clear()

    def __iter__(self) -> Iterator[str]:
        for k in self.table.data.keys():
            if isinstance(k, bytes):
                if k.startswith(MARK_PREFIX):
                    continue
                k = k.decode()
            yield k

    def __len__(self) -> int:
        return sum(1 for _ in self)

    @property
    def partitioned(self) -> bool:
        """Whether each partition's states can be read apart (RocksDB: one database each)."""
        return bool(getattr(self.table.data, "use_rocksdict", False))

    def raw_states(self, partition: int | None = None) -> Iterator[bytes]:
        """Encoded states, of one partition (read from its own RocksDB) or of all."""
        data = self.table.data
        if partition is not None and self.partitioned:
            items = faust_internals.partition_items(data, partition)
        else:
            items = data.items()
        for key, raw in items:
            if raw is not None and not key.startswith(MARK_PREFIX):
                yield raw

    def states(self, partition: int | None = None) -> Iterator[Any]:
        decode = self.decode
        for raw in self.raw_states(partition):
            st = decode(raw)
            if partition is None or st.partition == partition:
                yield st
