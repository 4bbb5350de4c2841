"""Where Kafka's default partitioner puts a keyed record, at a fraction of aiokafka's cost.

Outputs are keyed (MessageStatus by message, removals and phone events by phone), and the
outbox places every record itself, so the hash runs for most records a worker produces.
aiokafka's murmur2 is a byte-by-byte Java transcription that cost ~4 % of a worker's CPU;
this one reads the key's 32-bit words in one ``struct`` call and masks only where Java's
int arithmetic wraps. Same results, checked against aiokafka's in tests/test_partitioner.py.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable

_M = 0x5BD1E995
_SEED = 0x9747B28C
_MASK = 0xFFFFFFFF
_WORDS: dict[int, struct.Struct] = {}


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), as an unsigned int."""
    length = len(data)
    h = _SEED ^ length
    n = length >> 2
    if n:
        words = _WORDS.get(n)
        if words is None:
            words = _WORDS[n] = struct.Struct(f"<{n}I")
        for k in words.unpack_from(data):
            k = (k * _M) & _MASK
            k = ((k ^ (k >> 24)) * _M) & _MASK
            h = ((h * _M) & _MASK) ^ k
    tail = length & 3
    if tail:
        i = length - tail
        if tail == 3:
            h ^= data[i + 2] << 16
        if tail >= 2:
            h ^= data[i + 1] << 8
        h = ((h ^ data[i]) * _M) & _MASK
    h = ((h ^ (h >> 13)) * _M) & _MASK
    return h ^ (h >> 15)


#: Recent keys' murmur2 (masked). The worker hashes most keys twice: the placement check
#: of an input record (processors/placement) and the placing of its MessageStatus output,
#: keyed by the same message id, a moment later; phones recur in removals and phone events.
#: Bounded (cleared when full): ~2 MB at most.
_RECENT: dict[bytes, int] = {}
RECENT_KEYS = 16_384


def partition_for(key: bytes, partitions: int) -> int:
    """Where Kafka's default partitioner (Java's, and aiokafka's) puts a keyed record."""
    h = _RECENT.get(key)
    if h is None:
        if len(_RECENT) >= RECENT_KEYS:
            _RECENT.clear()
        h = _RECENT[key] = murmur2(key) & 0x7FFFFFFF
    return h % partitions


def crc32_partition(key: bytes, partitions: int) -> int:
    """librdkafka's ``consistent`` and ``consistent_random`` partitioners (its default, so
    confluent-kafka-python's, node-rdkafka's and the Go confluent client's): CRC-32 of the
    key modulo the count."""
    return zlib.crc32(key) % partitions


def fnv1a_partition(key: bytes, partitions: int) -> int:
    """librdkafka's ``fnv1a`` partitioner, Sarama's (Go) default hash partitioner: FNV-1a
    32-bit of the key read as a signed int, its absolute value modulo the count."""
    h = 0x811C9DC5
    for b in key:
        h = ((h ^ b) * 0x01000193) & _MASK
    if h & 0x80000000:
        h = 0x100000000 - h  # abs() of the signed int; INT32_MIN stays 2**31, as in C and Go
    return h % partitions


#: A partitioner: where it puts a key among ``partitions``.
Partitioner = Callable[[bytes, int], int]

#: The usual partitioners of Kafka clients, by the name the log lines and reports give.
PARTITIONERS: dict[str, Partitioner] = {
    "murmur2": partition_for,
    "crc32": crc32_partition,
    "fnv1a": fnv1a_partition,
}

#: Who uses each (for the log line that names the one explaining a misplaced record).
USED_BY = {
    "murmur2": "Java clients' and aiokafka's default",
    "crc32": "librdkafka's default consistent_random: confluent-kafka, node-rdkafka",
    "fnv1a": "Sarama's default, librdkafka's fnv1a",
}


def explaining(key: bytes, partition: int, partitions: int) -> list[str]:
    """The usual partitioners that put ``key`` on ``partition`` (by chance too, with few
    partitions: the caller looks at several records before naming one)."""
    return [name for name, place in PARTITIONERS.items() if place(key, partitions) == partition]
