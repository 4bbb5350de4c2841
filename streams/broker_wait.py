"""Waiting for a Kafka-compatible broker to answer, as a client would.

The worker waits here before it plans its topics (``smstally worker``), and the embedded
broker launcher (:mod:`streams.devtools.broker`) waits here for the Tansu it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from .config import broker_addresses

__all__ = ["BrokerError", "BrokerNotReady", "wait_for_broker"]


class BrokerError(RuntimeError):
    """A broker could not be reached (or, for the embedded one, found or run)."""


class BrokerNotReady(BrokerError, TimeoutError):
    """No broker answered a metadata request in time."""


async def _probe(bootstrap: str, timeout: float) -> None:
    """One real bootstrap: ApiVersions + Metadata, as every client starts."""
    from aiokafka.client import AIOKafkaClient

    client = AIOKafkaClient(
        bootstrap_servers=bootstrap,
        request_timeout_ms=max(int(timeout * 1000), 500),
        connections_max_idle_ms=60_000,
    )
    try:
        await asyncio.wait_for(client.bootstrap(), timeout)
        if not client.cluster.brokers():
            raise BrokerNotReady(f"{bootstrap} answered metadata without brokers")
    finally:
        with contextlib.suppress(Exception):
            await client.close()


async def wait_for_broker(
    url: str,
    timeout: float = 15.0,
    *,
    interval: float = 0.1,
    alive: Callable[[], bool] | None = None,
) -> None:
    """Wait until a Kafka-compatible broker answers a metadata round trip.

    A listening socket is not enough (Tansu accepts before it serves), so
    this does what a client does: bootstrap and read the broker list, of the
    first broker of ``url``. ``alive`` lets the caller stop waiting for a
    process that already died (:class:`BrokerError`). Raises
    :class:`BrokerNotReady` after ``timeout`` seconds.
    """
    first = broker_addresses(url)[0]
    host, port, bootstrap = first.host, first.port, first.bootstrap
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        if alive is not None and not alive():
            raise BrokerError(f"broker process for {url} exited while starting")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrokerNotReady(
                f"no Kafka broker answered at {url} within {timeout:g}s" + (f" (last error: {last!r})" if last else "")
            )
        try:
            # TCP first: cheap, and keeps aiokafka from logging a connection
            # error for every poll while the broker is still binding.
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), min(max(remaining, 0.2), 1.0))
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            await _probe(bootstrap, min(max(remaining, 0.2), 2.0))
            return
        except Exception as exc:  # noqa: BLE001 - anything means "not yet"
            last = exc
        await asyncio.sleep(min(interval, max(deadline - time.monotonic(), 0)))
