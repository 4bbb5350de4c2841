"""Building the Faust app from settings: the only place that knows Faust's configuration."""

from __future__ import annotations

import logging
from typing import Any

import faust

from .compat import tansu
from .config import Settings
from .consumer import BatchConsumer
from .pipeline import Pipeline
from .topics import TopicPlan
from .web import add_endpoints

log = logging.getLogger("smstally")
DEFAULT_FETCH_MAX_WAIT_MS = 500  # Kafka answers a fetch as soon as data is there: this only paces idle polls


def faust_config(s: Settings) -> dict[str, Any]:
    cfg: dict[str, Any] = dict(
        broker=s.broker,
        store="rocksdb://" if s.store == "rocksdb" else "memory://",
        datadir=s.data_dir,
        web_port=s.web_port,
        web_bind=s.web_host,
        web_host=s.web_host if s.web_host != "0.0.0.0" else "127.0.0.1",
        topic_partitions=s.partitions,
        topic_replication_factor=s.replication_factor,
        topic_allow_declare=True,
        topic_disable_leader=True,  # no leader-only work; saves a topic and a consumer
        processing_guarantee="at_least_once",
        broker_max_poll_records=s.max_poll_records,
        consumer_max_fetch_size=s.max_fetch_partition_bytes,
        table_standby_replicas=0,
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        key_serializer="raw",
        value_serializer="raw",
        logging_config=None,
    )
    cfg.update(tansu.faust_settings(s.broker_flavor))
    return cfg


def build(s: Settings, plan: TopicPlan) -> tuple[faust.App, Pipeline]:
    tansu.apply(s.broker_flavor)
    app = faust.App(s.app_id, **faust_config(s))
    pipe = Pipeline(app, s, plan)
    transport: Any = app.transport  # Consumer is the class its consumer is made of
    transport.Consumer = BatchConsumer.with_handlers(
        pipe.handlers(),
        pipe.on_batch_error,
        s.fetch_max_wait_ms or tansu.fetch_max_wait_ms(s.broker_flavor) or DEFAULT_FETCH_MAX_WAIT_MS,
    )
    add_endpoints(app, pipe)
    return app, pipe
