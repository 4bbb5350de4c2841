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
