"""aiokafka private names smstally uses. Checked with aiokafka 0.14.0 (see
:mod:`streams.adapters.versions`); each is tested in ``tests/test_library_internals.py``.

* ``AIOKafkaConsumer._fetch_max_wait_ms`` (int, read when the consumer starts its fetcher):
  the fetch wait. Faust creates the consumer with a hard-coded 1500 ms and has no setting
  for it; ``streams.consumer`` sets our wait on the consumer Faust made, before it starts
  (:func:`set_fetch_max_wait_ms`). Against the embedded broker every hop through an
  internal topic would otherwise cost up to that long (``streams/compat/tansu.py``, point 5).
* ``AIOKafkaClient._wait_on_metadata(topic)`` (coroutine): wait until the client's cluster
  metadata knows ``topic``'s partitions. The outbox places keyed records itself (it sends
  whole batches with ``send_batch``, which takes a partition), so it needs the partition
  list, which aiokafka fetches only through this coroutine (:func:`wait_for_partitions`).
* ``Fetcher._proc_offset_request(node_id, topic_data)`` (coroutine): the one place every
  ListOffsets request goes through; the Tansu compatibility layer wraps it to correct
  Tansu's wrong "latest" answers (``streams/compat/tansu.py``, point 1;
  :func:`wrap_offset_request`, :func:`unwrap_offset_request`).
* ``Fetcher._client`` (the :class:`aiokafka.client.AIOKafkaClient`) and
  ``Fetcher._isolation_level`` (int, 0 read_uncommitted, 1 read_committed): what that
  wrapper needs to send its correcting Fetch on the fetcher's own client with the fetcher's
  isolation (:func:`fetcher_client`, :func:`fetcher_isolation_level`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka.consumer.fetcher import Fetcher

OffsetRequest = Callable[[Any, int, Any], Awaitable[Any]]


def set_fetch_max_wait_ms(consumer: Any, wait_ms: int) -> None:
    """Set an :class:`aiokafka.AIOKafkaConsumer`'s fetch wait; only before it starts."""
    consumer._fetch_max_wait_ms = wait_ms


async def wait_for_partitions(client: Any, topic: str) -> set[int]:
    """``topic``'s partition numbers, waiting for ``client``'s metadata to know them."""
    await client._wait_on_metadata(topic)
    partitions: set[int] = client.cluster.partitions_for_topic(topic)
    return partitions


def offset_request() -> OffsetRequest | None:
    """aiokafka's ``Fetcher._proc_offset_request``, or None if this aiokafka has no such coroutine."""
    original = getattr(Fetcher, "_proc_offset_request", None)
    if original is None or not asyncio.iscoroutinefunction(original):
        return None
    return original  # type: ignore[no-any-return]


def wrap_offset_request(replacement: OffsetRequest) -> None:
    """Make ``replacement`` the ``Fetcher._proc_offset_request`` of every fetcher (process-wide)."""
    Fetcher._proc_offset_request = replacement


def unwrap_offset_request(original: OffsetRequest) -> None:
    """Put aiokafka's own ``Fetcher._proc_offset_request`` (as returned by :func:`offset_request`) back."""
    Fetcher._proc_offset_request = original


def fetcher_client(fetcher: Any) -> Any:
    """The :class:`aiokafka.client.AIOKafkaClient` a Fetcher sends its requests with."""
    return fetcher._client


def fetcher_isolation_level(fetcher: Any) -> int:
    """A Fetcher's isolation level: 0 read_uncommitted, 1 read_committed."""
    level: int = fetcher._isolation_level
    return level
