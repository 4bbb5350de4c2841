"""A Faust table seen as a plain mapping of domain states, so stages never import Faust.

Keys are bytes on both paths (live writes and changelog recovery) so that the memory store
and RocksDB agree; values are the stage codecs' bytes.
"""
from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, Callable, Iterator


class TableStore(MutableMapping):
    def __init__(self, table: Any, encode: Callable[[Any], bytes], decode: Callable[[bytes], Any]):
        self.table = table
        self.encode = encode
        self.decode = decode

    def get(self, key: str, default: Any = None) -> Any:
        raw = self.table.get(key.encode())
        return default if raw is None else self.decode(raw)

    def __getitem__(self, key: str) -> Any:
        raw = self.table.get(key.encode())
        if raw is None:
            raise KeyError(key)
        return self.decode(raw)

    def __setitem__(self, key: str, value: Any) -> None:
        self.table[key.encode()] = self.encode(value)

    def __delitem__(self, key: str) -> None:
        del self.table[key.encode()]

    def __iter__(self) -> Iterator[str]:
        for k in self.table.keys():
            yield k.decode() if isinstance(k, bytes) else k

    def __len__(self) -> int:
        return len(self.table)

    def states(self) -> Iterator[Any]:
        for raw in self.table.values():
            if raw is not None:
                yield self.decode(raw)
