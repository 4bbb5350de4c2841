"""Input records on another partition than their key's: counted, explained, reported.

Contract §1: producers key the inputs and place them with Kafka's default partitioner
(murmur2). Many do not: librdkafka's default is CRC32-based, Sarama's is FNV-1a, and a send
and its receipts are often published by two services on two client libraries. A receipt
on another partition than its send is folded by another message stage, which never sees
the send: the campaign then shows it waiting for ever, and nothing else says so. This
module is what says so: the topology checks every input record (one murmur2 of its key,
~1 µs) and hands the misplaced ones of a batch here, which counts them per topic, names the
usual partitioner that does place them (from a few samples per batch: with few partitions
any one record fits a wrong partitioner by chance), and logs once a minute per topic.

What happens to the records is the topology's choice (``SMSTALLY_INPUT_PARTITIONING``):
``auto`` forwards the misplaced message inputs to the partition of their message,
``repartition`` forwards every message input, ``trust`` folds everything where it is.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .partitioner import PARTITIONERS, USED_BY, explaining

log = logging.getLogger("smstally")

#: The values of SMSTALLY_INPUT_PARTITIONING, the default first.
PARTITIONING = ("auto", "repartition", "trust")

#: Misplaced records explained per batch (the rest are only counted).
SAMPLES_PER_BATCH = 4
#: At most one log line per topic in this many seconds.
LOG_EVERY_S = 60.0


class Keyed(Protocol):
    @property
    def key(self) -> bytes | None: ...
    @property
    def partition(self) -> int: ...


@dataclass
class TopicPlacement:
    """What was found on one input topic since the worker started."""

    mispartitioned: int = 0  # records not where murmur2 places their key (keyless ones included)
    keyless: int = 0
    sampled: int = 0  # keyed misplaced records tried against the usual partitioners
    fits: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PARTITIONERS, 0))
    logged_at: float | None = None  # monotonic time of the last log line

    def partitioner(self) -> str | None:
        """The usual partitioner that placed every sampled record; None: none or not yet known.
        Two that both fit every sample are named together (``crc32|fnv1a``) until one fails."""
        if not self.sampled:
            return None
        names = [name for name, n in self.fits.items() if n == self.sampled]
        return "|".join(names) or "unknown"


class PlacementCheck:
    """The per-topic findings, fed one batch's misplaced records at a time."""

    def __init__(self, clock_s: Callable[[], float] = time.monotonic, log_every_s: float = LOG_EVERY_S):
        self.clock_s, self.log_every_s = clock_s, log_every_s
        self.topics: dict[str, TopicPlacement] = {}

    def found(self, topic: str, partitions: int, misplaced: Sequence[Keyed]) -> None:
        """``misplaced``: the records of one fetched batch of ``topic`` that are not on
        murmur2(key) mod ``partitions`` (or have no key)."""
        t = self.topics.get(topic)
        if t is None:
            t = self.topics[topic] = TopicPlacement()
        t.mispartitioned += len(misplaced)
        sampled = 0
        for rec in misplaced:
            key = rec.key
            if key is None:
                t.keyless += 1
            elif sampled < SAMPLES_PER_BATCH:
                sampled += 1
                for name in explaining(key, rec.partition, partitions):
                    t.fits[name] += 1
        t.sampled += sampled
        now = self.clock_s()
        if t.logged_at is None or now - t.logged_at >= self.log_every_s:
            log.warning("%s", self.summary(topic, t))
            t.logged_at = now

    def summary(self, topic: str, t: TopicPlacement) -> str:
        """One line on a topic's misplaced records, for the log and the readiness body."""
        name = t.partitioner()
        if name is None:
            fit = "none of them has a key"
        elif name == "unknown":
            fit = f"no usual partitioner ({', '.join(PARTITIONERS)}) places them"
        else:
            who = "; ".join(USED_BY[n] for n in name.split("|"))
            fit = f"they fit the {name} partitioner ({who})"
        return (
            f"{topic}: {t.mispartitioned} input records so far on another partition than murmur2(key) "
            f"places them ({t.keyless} without a key); {fit}. "
            "Producers must use Kafka's default partitioner (contract §1)"
        )

    def report(self) -> dict[str, dict[str, Any]]:
        """Per topic with misplaced records: the count, the partitioner that fits, a summary."""
        return {
            topic: {
                "mispartitioned": t.mispartitioned,
                "keyless": t.keyless,
                "partitioner": t.partitioner(),
                "summary": self.summary(topic, t),
            }
            for topic, t in sorted(self.topics.items())
        }
