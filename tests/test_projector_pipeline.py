"""The projector's pipeline (readmodel/projector.py): records fetched while a batch is being
written are decoded into the next one, which the writer takes whole when it is free.

A consumer that hands out prepared fetches stands in for Kafka (the broker's part is covered
by tests/test_readmodel_integration.py and the crash test); the database is a real SQLite
file, written by the real ``ReadModelWriter``, only slowed down so that fetches pile up.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import pytest
from aiokafka.structs import TopicPartition

from readmodel import projector as projector_module
from readmodel.db import Database
from readmodel.hub import Hub
from readmodel.metrics import ApiMetrics
from readmodel.projector import Projector
from readmodel.queries import ReadModel
from readmodel.settings import ApiSettings
from schemas.codec import AvroCodec
from streams.config import Settings

FETCHES, PER_FETCH = 40, 250


@dataclass
class Record:
    offset: int
    value: bytes | None


def status(i: int, version: int) -> dict:
    return {
        "message_id": f"m{i % 3000:05d}",
        "campaign_id": "c1",
        "contact_id": None,
        "phone": "+33612345678",
        "status": "DELIVERED",
        "category": "receipt",
        "error_code": None,
        "provider": "p",
        "sent_at": 1,
        "status_at": 2 + version,
        "version": version,
        "not_sent_reason": None,
        "phone_valid": True,
    }


class Fetches:
    """``getmany`` as the projector calls it: prepared fetches, then nothing."""

    def __init__(self, tp: TopicPartition, fetches: list[list[Record]]):
        self.tp, self.fetches = tp, list(fetches)
        self.calls = 0

    async def getmany(self, timeout_ms: int, max_records: int) -> dict:
        self.calls += 1
        await asyncio.sleep(0)
        if not self.fetches:
            await asyncio.sleep(timeout_ms / 1000)
            return {}
        return {self.tp: self.fetches.pop(0)}


@pytest.fixture
def setup(tmp_path):
    s = ApiSettings(stream=Settings(data_dir=str(tmp_path)), read_db=f"sqlite:///{tmp_path / 'rm.sqlite3'}")
    db = Database(s.read_db)
    db.create_schema()
    p = Projector(s, db, Hub(), ApiMetrics())
    tp = TopicPartition(s.stream.topics.message_status, 0)
    codec = AvroCodec(None)
    n = FETCHES * PER_FETCH
    records = [Record(i, codec.encode("smstally.MessageStatus", status(i, 1 + i // 3000))) for i in range(n)]
    records[7] = Record(7, b"not avro")  # skipped, its offset still consumed
    fetches = [records[k : k + PER_FETCH] for k in range(0, n, PER_FETCH)]
    p.status.start_ends = {tp: n}
    yield p, db, Fetches(tp, fetches), n
    p._write_thread.shutdown(wait=True)
    p._decode_thread.shutdown(wait=True)
    db.close()


def slowed_writer(p: Projector, seconds: float) -> list[int]:
    """The real write, plus a pause: the records it was given per transaction."""
    sizes: list[int] = []
    apply = p.writer.apply

    def slow(batch):
        time.sleep(seconds)
        apply(batch)
        sizes.append(batch.records)

    p.writer.apply = slow
    return sizes


async def run_until_caught_up(p: Projector, consumer: Fetches, timeout: float = 60) -> None:
    task = asyncio.create_task(p._consume(consumer))
    deadline = time.monotonic() + timeout
    while not p.status.caught_up:
        assert time.monotonic() < deadline, f"not caught up: {p.status.lagging()}"
        assert not task.done(), task.exception()
        await asyncio.sleep(0.01)
    p.stop()
    await asyncio.wait_for(task, 10)


def test_fetches_that_arrive_during_a_write_go_into_the_next_transaction(setup):
    p, db, consumer, n = setup
    sizes = slowed_writer(p, 0.1)
    asyncio.run(run_until_caught_up(p, consumer))
    assert sum(sizes) == n, "every record in exactly one transaction"
    assert len(sizes) < FETCHES / 3, f"fetches were not coalesced: {sizes}"
    assert p.status.generation == len(sizes)
    offsets = p.writer.offsets()
    assert offsets == {(consumer.tp.topic, 0): n}
    assert p.status.positions[consumer.tp] == n
    # the highest version of each message, as if written one record at a time
    m = ReadModel(db)
    assert m.count_messages("c1") == 3000
    assert m.message("m00042")["version"] == max(1 + i // 3000 for i in range(42, n, 3000))


def test_fetching_pauses_when_the_next_batch_is_full(setup, monkeypatch):
    p, db, consumer, n = setup
    monkeypatch.setattr(projector_module, "MAX_PENDING_RECORDS", 1000)
    sizes = slowed_writer(p, 0.1)
    asyncio.run(run_until_caught_up(p, consumer))
    assert sum(sizes) == n
    # full at 1 000: one more fetch may have been under way
    assert max(sizes) <= 1000 + PER_FETCH, sizes
    assert p.writer.offsets() == {(consumer.tp.topic, 0): n}


def test_a_failing_write_is_retried_with_the_same_records(setup):
    p, db, consumer, n = setup
    sizes: list[int] = []
    apply, failures = p.writer.apply, [2]

    def flaky(batch):
        if failures[0]:
            failures[0] -= 1
            raise RuntimeError("database unavailable")
        apply(batch)
        sizes.append(batch.records)

    p.writer.apply = flaky
    asyncio.run(run_until_caught_up(p, consumer, timeout=90))
    assert sum(sizes) == n and p.status.db_ok
    assert p.writer.offsets() == {(consumer.tp.topic, 0): n}
    assert ReadModel(db).count_messages("c1") == 3000
