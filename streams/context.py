"""The source partition a batch comes from, where Faust's tables look for it.

A Faust table write goes to the changelog partition of the *current event*, and a RocksDB
store keeps one database per partition chosen the same way. Batches are handled outside
Faust's streams, so there is no current event: this sets a stand-in that carries only the
topic and partition, for the duration of one batch.
"""
from __future__ import annotations

import contextlib
import weakref
from typing import Any, Iterator

from faust.streams import _current_event


class _Message:
    __slots__ = ("topic", "partition", "tp")

    def __init__(self, tp: Any):
        self.topic, self.partition, self.tp = tp.topic, tp.partition, tp


class _Event:
    __slots__ = ("message", "__weakref__")

    def __init__(self, tp: Any):
        self.message = _Message(tp)


@contextlib.contextmanager
def source_partition(tp: Any) -> Iterator[None]:
    event = _Event(tp)  # held here: the context variable keeps only a weak reference
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)
