"""Settings: the one broker-URL parser and the defaults taken from the domain."""

from __future__ import annotations

import pytest

from processors.message_stage import DEFAULT_ORPHAN_WINDOW_MS, DEFAULT_PENDING_TIMEOUT_MS
from processors.phone_stage import DEFAULT_ATTRIBUTION_WINDOW_MS
from streams.compat.tansu import _bootstrap_servers
from streams.config import (
    DEFAULT_BROKER_URL,
    BrokerAddress,
    Settings,
    bootstrap_servers,
    broker_addresses,
    from_env,
    parse_broker_url,
)


@pytest.mark.parametrize(
    "url, expected",
    [
        ("kafka://127.0.0.1:9092", ("127.0.0.1", 9092)),
        ("kafka://localhost:19092", ("localhost", 19092)),
        ("127.0.0.1:1234", ("127.0.0.1", 1234)),
        ("kafka://broker", ("broker", 9092)),
        ("broker", ("broker", 9092)),
        ("kafka://a:1;kafka://b:2", ("a", 1)),
        ("tcp://[::1]:9093", ("::1", 9093)),
        ("tansu://h:7", ("h", 7)),
        ("kafka://h:7/", ("h", 7)),
        ("  kafka://h:7  ", ("h", 7)),
        (";kafka://h:7", ("h", 7)),
    ],
)
def test_parse_broker_url(url, expected):
    assert parse_broker_url(url) == expected


@pytest.mark.parametrize(
    "url, expected",
    [
        ("kafka://127.0.0.1:9092", "127.0.0.1:9092"),
        ("kafka://a:1;kafka://b:2", "a:1,b:2"),
        ("kafka://a:1,kafka://b:2", "a:1,b:2"),
        ("kafka://a:1; kafka://b:2;", "a:1,b:2"),
        ("a:1,b:2", "a:1,b:2"),
        ("tcp://[::1]:9093;kafka://b", "[::1]:9093,b:9092"),
        ("tansu://h:7/", "h:7"),
    ],
)
def test_bootstrap_servers(url, expected):
    assert bootstrap_servers(url) == expected
    assert Settings(broker=url).bootstrap == expected
    assert _bootstrap_servers(url) == expected.split(",")


def test_a_list_of_urls():
    assert broker_addresses(["kafka://a:1;b:2", "c"]) == [
        BrokerAddress("a", 1),
        BrokerAddress("b", 2),
        BrokerAddress("c", 9092),
    ]
    assert _bootstrap_servers(["kafka://a:1", "b:2"]) == ["a:1", "b:2"]


@pytest.mark.parametrize("url", ["", " ", ";", ",;"])
def test_an_empty_url_is_refused(url):
    with pytest.raises(ValueError, match="empty broker URL"):
        broker_addresses(url)


def test_a_bad_port_is_refused():
    with pytest.raises(ValueError, match="bad port"):
        parse_broker_url("kafka://h:port")


def test_address_forms():
    assert BrokerAddress("h", 1).url == "kafka://h:1"
    assert BrokerAddress("::1", 2).bootstrap == "[::1]:2"
    assert BrokerAddress("::1", 2).url == "kafka://[::1]:2"


def test_defaults_are_the_domain_s():
    s = from_env({})
    assert s == Settings()
    assert s.broker == DEFAULT_BROKER_URL
    assert s.pending_timeout_h * 3_600_000 == DEFAULT_PENDING_TIMEOUT_MS
    assert s.orphan_window_h * 3_600_000 == DEFAULT_ORPHAN_WINDOW_MS
    assert s.attribution_window_h * 3_600_000 == DEFAULT_ATTRIBUTION_WINDOW_MS
    assert (s.pending_timeout_h, s.orphan_window_h, s.attribution_window_h) == (72.0, 24.0, 72.0)


def test_input_partitioning_defaults_to_auto_and_is_validated():
    assert from_env({}).input_partitioning == "auto"
    assert from_env({"SMSTALLY_INPUT_PARTITIONING": "Trust"}).input_partitioning == "trust"
    assert from_env({"SMSTALLY_INPUT_PARTITIONING": "repartition"}).input_partitioning == "repartition"
    with pytest.raises(ValueError, match="SMSTALLY_INPUT_PARTITIONING must be one of auto, repartition, trust"):
        from_env({"SMSTALLY_INPUT_PARTITIONING": "murmur2"})


def test_the_rerouted_topic_follows_the_message_inputs_partition_count():
    from streams.topics import TopicLayoutError, plan_topics

    s = Settings(partitions=8)
    _, missing = plan_topics(s, {"sms.message-sent": 6, "sms.dlr": 6})
    assert {m.name: m.num_partitions for m in missing}[s.rerouted_messages_topic] == 6
    with pytest.raises(TopicLayoutError, match="smstally-rerouted-messages has 8 partitions"):
        plan_topics(s, {"sms.message-sent": 6, "sms.dlr": 6, s.rerouted_messages_topic: 8})
