"""Every private name of Faust, aiokafka and mode that smstally uses (streams/adapters/),
checked against the installed libraries: it exists, is the kind of thing we use (attribute,
method, coroutine), and has the signature or type we rely on. An upgrade that changes one
fails here, by name, instead of in a running worker. Also the version check at start.

No broker: Faust's app, consumer, producer and a RocksDB table are built but not started.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import defaultdict
from weakref import WeakSet

import aiokafka
import faust
import pytest
from aiokafka.client import AIOKafkaClient
from aiokafka.consumer.fetcher import Fetcher
from faust.exceptions import NotReady
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as FaustAIOKafkaConsumer
from faust.transport.drivers.aiokafka import Producer as FaustAIOKafkaProducer
from faust.types import TP
from mode import Service

from streams.adapters import aiokafka_internals, faust_internals, mode_internals, versions
from streams.consumer import BatchConsumer


def params(fn) -> list[str]:
    return list(inspect.signature(fn).parameters)


def is_method(cls, name: str) -> bool:
    return inspect.isfunction(inspect.getattr_static(cls, name, None))


def is_coroutine(cls, name: str) -> bool:
    return is_method(cls, name) and inspect.iscoroutinefunction(getattr(cls, name))


@pytest.fixture
def app(tmp_path):
    """A Faust app whose consumer is ours, with a RocksDB store: built, never started."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    a = faust.App("privates-test", broker="kafka://127.0.0.1:1", store="rocksdb://", datadir=str(tmp_path))
    a.transport.Consumer = BatchConsumer.with_handlers({}, None, 20)
    try:
        yield a
    finally:
        asyncio.set_event_loop(None)
        loop.close()


# -- versions ----------------------------------------------------------------------------------
def test_the_installed_libraries_are_the_tested_ones():
    assert versions.mismatches() == []


def test_another_version_stops_the_start_with_both_versions_and_the_override_named():
    installed = dict(versions.TESTED, aiokafka="0.15.1")
    with pytest.raises(versions.UntestedLibraries) as info:
        versions.check_versions({}, installed)
    text = str(info.value)
    assert "aiokafka 0.15.1 is installed" in text and "aiokafka==0.14.0" in text
    assert versions.OVERRIDE_VAR in text


def test_a_missing_library_is_named_too():
    installed = dict(versions.TESTED, **{"mode-streaming": None})
    with pytest.raises(versions.UntestedLibraries, match="mode-streaming not installed"):
        versions.check_versions({}, installed)


def test_the_override_starts_anyway_with_a_warning(caplog):
    installed = dict(versions.TESTED, **{"faust-streaming": "0.16.0"})
    versions.check_versions({versions.OVERRIDE_VAR: "1"}, installed)
    assert "faust-streaming 0.16.0 is installed" in caplog.text
    with pytest.raises(versions.UntestedLibraries):
        versions.check_versions({versions.OVERRIDE_VAR: "0"}, installed)


def test_the_worker_refuses_to_start_on_an_untested_version(monkeypatch, caplog):
    from streams import cli

    monkeypatch.delenv(versions.OVERRIDE_VAR, raising=False)
    monkeypatch.setattr(versions, "TESTED", dict(versions.TESTED, aiokafka="0.0.1"))
    assert cli.main(["worker", "--broker", "kafka://127.0.0.1:1"]) == 2  # before any broker contact
    assert "refusing to start" in caplog.text and "aiokafka==0.0.1" in caplog.text


def test_pyproject_pins_the_tested_versions():
    import pathlib
    import tomllib

    doc = tomllib.loads((pathlib.Path(__file__).parents[1] / "pyproject.toml").read_text())
    deps = set(doc["project"]["dependencies"])
    for name, version in versions.TESTED.items():
        assert f"{name}=={version}" in deps


# -- Faust: overridden private methods ----------------------------------------------------------
def test_faust_runs_the_record_loop_as_consumer_drain_messages_of_the_fetcher():
    assert is_coroutine(FaustAIOKafkaConsumer, "_drain_messages")
    assert params(FaustAIOKafkaConsumer._drain_messages) == ["self", "fetcher"]
    from faust.transport import consumer as faust_consumer

    assert "await consumer._drain_messages(self)" in inspect.getsource(faust_consumer.Fetcher)


def test_faust_asks_consumer_new_offset_what_to_commit():
    assert is_method(FaustAIOKafkaConsumer, "_new_offset")
    assert not inspect.iscoroutinefunction(FaustAIOKafkaConsumer._new_offset)
    assert params(FaustAIOKafkaConsumer._new_offset) == ["self", "tp"]
    from faust.transport.consumer import Consumer

    assert "self._new_offset(tp)" in inspect.getsource(Consumer._filter_tps_with_pending_acks) + inspect.getsource(
        Consumer._filter_committable_offsets
    )


def test_faust_makes_its_consumer_thread_with_new_consumer_thread(app):
    assert is_method(FaustAIOKafkaConsumer, "_new_consumer_thread")
    assert params(FaustAIOKafkaConsumer._new_consumer_thread) == ["self"]
    assert isinstance(app.consumer._thread, faust_internals.FetchWaitConsumerThread)


def test_the_consumer_thread_makes_the_aiokafka_consumer_with_create_worker_consumer(app):
    assert is_method(AIOKafkaConsumerThread, "_create_worker_consumer")
    assert params(AIOKafkaConsumerThread._create_worker_consumer) == ["self", "transport"]

    async def make() -> aiokafka.AIOKafkaConsumer:  # aiokafka wants a running loop
        return app.consumer._thread._create_worker_consumer(app.transport)

    ak = asyncio.get_event_loop().run_until_complete(make())
    assert isinstance(ak, aiokafka.AIOKafkaConsumer)
    assert ak._fetch_max_wait_ms == 20  # ours, not Faust's 1500


# -- Faust: consumer attributes and methods ------------------------------------------------------
def test_the_consumer_thread_hands_out_the_aiokafka_consumer_with_ensure_consumer(app):
    assert is_method(AIOKafkaConsumerThread, "_ensure_consumer")
    assert params(AIOKafkaConsumerThread._ensure_consumer) == ["self"]
    from faust.exceptions import ConsumerNotStarted

    with pytest.raises(ConsumerNotStarted):
        faust_internals.aiokafka_consumer(app.consumer)
    assert is_coroutine(type(app.consumer._thread), "call_thread")


def test_faust_consumer_offset_maps_are_defaultdicts_of_none(app):
    c = app.consumer
    for name in ("_read_offset", "_committed_offset"):
        value = getattr(c, name)
        assert isinstance(value, defaultdict), name
        assert value.default_factory() is None, name
    tp = TP("t", 0)
    assert faust_internals.read_offset(c, tp) is None and faust_internals.committed_offset(c, tp) is None
    assert tp not in c._read_offset  # read with .get: no entry made
    c.set_read_offset(tp, 7)
    c.set_committed_offset(tp, 5)
    assert faust_internals.read_offset(c, tp) == 7 and faust_internals.committed_offset(c, tp) == 5


def test_faust_commit_finds_partitions_in_acked_and_counts_n_acked(app):
    c = app.consumer
    assert isinstance(c._acked, defaultdict) and c._acked.default_factory is list
    assert c._n_acked == 0
    assert c.commit_every == app.conf.broker_commit_every
    c.mark_processed(TP("t", 1), 9, 3)
    assert TP("t", 1) in c._acked and c._n_acked == 3 and c._read_offset[TP("t", 1)] == 9
    assert c.processed_since_commit() == 3
    c.reset_processed_count()
    assert c._n_acked == 0
    from faust.transport.consumer import Consumer

    assert "self._acked" in inspect.getsource(Consumer._filter_tps_with_pending_acks)
    assert "self._n_acked" in inspect.getsource(Consumer._drain_messages)


def test_a_rebalance_waits_for_the_unacked_messages_set(app):
    c = app.consumer
    assert isinstance(c._unacked_messages, WeakSet)
    with c.holding_rebalance():
        [token] = list(c._unacked_messages)
        assert token.acked is False and token.refcount == 1
    assert not c._unacked_messages
    from faust.transport.consumer import Consumer

    source = inspect.getsource(Consumer.wait_empty) + inspect.getsource(Consumer._clean_unacked_messages)
    assert "self._unacked_messages" in source and "message.acked" in source and "m.refcount" in source


def test_fetching_uses_wait_next_records_buffered_and_active_partitions(app):
    c = app.consumer
    assert is_coroutine(FaustAIOKafkaConsumer, "_wait_next_records")
    assert params(FaustAIOKafkaConsumer._wait_next_records) == ["self", "timeout"]
    assert is_method(FaustAIOKafkaConsumer, "_get_active_partitions")
    assert params(FaustAIOKafkaConsumer._get_active_partitions) == ["self"]
    assert isinstance(c.buffered_partitions(), set)
    assert isinstance(c.current_active_partitions(), set)
    assert isinstance(faust_internals.paused_partitions(c), set)
    assert isinstance(faust_internals.active_partitions(c), set)
    assert isinstance(c._commit_every, (int, type(None)))


def test_per_record_delivery_uses_to_message_and_add_gap(app):
    assert is_method(FaustAIOKafkaConsumer, "_to_message")
    assert params(FaustAIOKafkaConsumer._to_message) == ["self", "tp", "record"]
    assert is_coroutine(FaustAIOKafkaConsumer, "_add_gap")
    assert params(FaustAIOKafkaConsumer._add_gap) == ["self", "tp", "offset_from", "offset_to"]
    record = aiokafka.ConsumerRecord("t", 0, 5, 0, 0, b"k", b"v", None, 1, 1, [])
    message = app.consumer._to_message(TP("t", 0), record)
    assert (message.topic, message.partition, message.offset, message.key, message.value) == ("t", 0, 5, b"k", b"v")


# -- Faust: producer and RocksDB store -----------------------------------------------------------
def test_the_producer_hands_out_the_aiokafka_producer_with_ensure_producer(app):
    assert is_method(FaustAIOKafkaProducer, "_ensure_producer")
    assert params(FaustAIOKafkaProducer._ensure_producer) == ["self"]
    ensure = faust_internals.aiokafka_producer(app)
    with pytest.raises(NotReady):  # not started yet
        ensure()


def test_the_rocksdb_store_opens_one_rdict_per_partition(app):
    from faust.stores.rocksdb import Store
    from rocksdict import Rdict

    assert params(Store._db_for_partition) == ["self", "partition"]
    assert params(Store._visible_items) == ["self", "db"]
    table = app.Table("privates", partitions=2, key_type=bytes, value_type=bytes)
    data = table.data
    assert isinstance(data, Store)
    db = faust_internals.partition_db(data, 1)
    assert isinstance(db, Rdict)
    assert faust_internals.partition_db(data, 1) is db  # opened once
    db[b"k"] = b"v"
    assert list(faust_internals.partition_items(data, 1)) == [(b"k", b"v")]
    assert list(faust_internals.partition_items(data, 0)) == []


# -- mode ------------------------------------------------------------------------------------------
def test_a_mode_service_stop_request_is_its_stopped_event():
    async def go() -> tuple[bool, bool]:
        service = Service()
        stopped = mode_internals.stop_requested(service)
        before = stopped()
        await service.stop()
        return before, stopped()

    assert asyncio.run(go()) == (False, True)
    from mode.utils.locks import Event

    assert isinstance(Service()._stopped, Event)


# -- aiokafka --------------------------------------------------------------------------------------
def test_the_aiokafka_consumer_passes_fetch_max_wait_ms_to_its_fetcher_at_start():
    async def go() -> int:
        consumer = aiokafka.AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1")
        aiokafka_internals.set_fetch_max_wait_ms(consumer, 20)
        return consumer._fetch_max_wait_ms

    assert asyncio.run(go()) == 20
    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in inspect.getsource(aiokafka.AIOKafkaConsumer.start)


def test_the_aiokafka_client_waits_for_topic_metadata_with_wait_on_metadata():
    assert is_coroutine(AIOKafkaClient, "_wait_on_metadata")
    assert params(AIOKafkaClient._wait_on_metadata) == ["self", "topic"]
    assert "partitions_for_topic" in inspect.getsource(AIOKafkaClient._wait_on_metadata)


def test_every_list_offsets_goes_through_fetcher_proc_offset_request():
    assert aiokafka_internals.offset_request() is not None
    original = inspect.unwrap(Fetcher._proc_offset_request)
    assert inspect.iscoroutinefunction(original)
    assert params(original) == ["self", "node_id", "topic_data"]
    assert "self._proc_offset_request(" in inspect.getsource(Fetcher._proc_offset_requests)


def test_the_fetcher_keeps_its_client_and_isolation_level():
    init = inspect.getsource(Fetcher.__init__)
    assert "self._client = client" in init
    assert "self._isolation_level = READ_UNCOMMITTED" in init and "self._isolation_level = READ_COMMITTED" in init

    class Fake:
        _client = object()
        _isolation_level = 1

    assert aiokafka_internals.fetcher_client(Fake) is Fake._client
    assert aiokafka_internals.fetcher_isolation_level(Fake) == 1
