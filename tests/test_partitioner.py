"""The outbox places keyed records itself: it must agree with Kafka's default partitioner,
or a MessageStatus would land where a compacted-topic reader keyed by message does not
expect it, and the phone index would be split across workers."""

from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.partitioner import murmur2, partition_for


@settings(max_examples=2000)
@given(st.binary(max_size=80))
def test_murmur2_matches_aiokafka(data: bytes) -> None:
    assert murmur2(data) == aiokafka_murmur2(data)


def test_known_java_values() -> None:
    # Kafka's own test vectors (UtilsTest.testMurmur2), as unsigned ints.
    cases = {
        b"21": -973932308,
        b"foobar": -790332482,
        b"a-little-bit-long-string": -985981536,
        b"a-little-bit-longer-string": -1486304829,
        b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
        b"abc": 479470107,
    }
    for data, signed in cases.items():
        assert murmur2(data) == signed & 0xFFFFFFFF, data


@given(st.binary(min_size=1, max_size=40), st.integers(min_value=1, max_value=64))
def test_partition_for_is_the_default_partitioners_choice(key: bytes, n: int) -> None:
    assert partition_for(key, n) == (aiokafka_murmur2(key) & 0x7FFFFFFF) % n


def test_crc32_is_librdkafkas_consistent_partitioner() -> None:
    # librdkafka's rd_crc32 is the standard CRC-32 (check value of "123456789": 0xCBF43926).
    from processors.partitioner import crc32_partition

    assert crc32_partition(b"123456789", 2**32) == 0xCBF43926
    assert crc32_partition(b"123456789", 7) == 0xCBF43926 % 7
    assert crc32_partition(b"", 5) == 0


def test_fnv1a_matches_sarama_vectors() -> None:
    # kafka-python's FNV1a32Partitioner vectors, confirmed there against goka/Sarama.
    from processors.partitioner import fnv1a_partition

    assert fnv1a_partition(b"123", 3) == 2
    assert fnv1a_partition(b"123", 2) == 1
    assert fnv1a_partition(b"123", 1) == 0
    assert fnv1a_partition(b"f232oo3232", 4) == 2
    assert fnv1a_partition(b"f232oo3232", 2) == 0
    # The FNV-1a 32 offset basis for the empty key (0x811C9DC5, negative as an int32).
    assert fnv1a_partition(b"", 2**31 + 1) == 2**32 - 0x811C9DC5


@settings(max_examples=300)
@given(st.binary(min_size=1, max_size=40), st.integers(1, 64))
def test_explaining_names_every_partitioner_that_places_the_key(key: bytes, n: int) -> None:
    from processors.partitioner import PARTITIONERS, explaining

    for name, place in PARTITIONERS.items():
        p = place(key, n)
        assert 0 <= p < n
        assert name in explaining(key, p, n)
    assert explaining(key, n, n) == []  # no partitioner puts a key beyond the count


@settings(max_examples=500)
@given(st.lists(st.binary(max_size=40), max_size=50), st.integers(1, 100))
def test_partition_for_is_murmur2_whether_the_key_is_recent_or_not(keys: list[bytes], n: int) -> None:
    from processors import partitioner

    for key in keys + keys:  # second time round: from the recent keys
        assert partition_for(key, n) == (aiokafka_murmur2(key) & 0x7FFFFFFF) % n
    assert len(partitioner._RECENT) <= partitioner.RECENT_KEYS
