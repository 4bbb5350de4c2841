"""Where Kafka's default partitioner puts a keyed record, at a fraction of aiokafka's cost.

Outputs are keyed (MessageStatus by message, removals and phone events by phone), and the
outbox places every record itself, so the hash runs for most records a worker produces.
aiokafka's murmur2 is a byte-by-byte Java transcription that cost ~4 % of a worker's CPU;
this one reads the key's 32-bit words in one ``struct`` call and masks only where Java's
int arithmetic wraps. Same results, checked against aiokafka's in tests/test_partitioner.py.
"""

from __future__ import annotations

import struct

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


def partition_for(key: bytes, partitions: int) -> int:
    """Where Kafka's default partitioner (Java's, and aiokafka's) puts a keyed record."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
