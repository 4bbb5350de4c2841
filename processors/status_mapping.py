"""Raw provider receipt -> canonical status (contract §4).

The vocabulary is data (``status_map.json``) so that a deployment adds a provider or a
code with a JSON file (``SMSTALLY_STATUS_MAP``) instead of a release. Lookups are cached
because the same few (provider, status, code) triples repeat millions of times.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from typing import Any

from . import catalog

FAILURE = "FAILURE"  # a failure whose permanence the error code decides
_ENV = "SMSTALLY_STATUS_MAP"


def _load_default() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(resources.files(__package__).joinpath("status_map.json").read_text())
    return data


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = {
        "vocabularies": {k: dict(v) for k, v in base["vocabularies"].items()},
        "permanent_codes": dict(base["permanent_codes"]),
    }
    for provider, vocab in extra.get("vocabularies", {}).items():
        out["vocabularies"].setdefault(provider.lower(), {}).update(vocab)
    for provider, codes in extra.get("permanent_codes", {}).items():
        out["permanent_codes"][provider.lower()] = codes
    return out


def _code_set(spec: list[Any]) -> frozenset[int]:
    codes: set[int] = set()
    for item in spec:
        if isinstance(item, list):
            lo, hi = item
            codes.update(range(int(lo), int(hi) + 1))
        else:
            codes.add(int(item))
    return frozenset(codes)


def parse_code(raw: str | None) -> int | None:
    """Contract: a code is read as a decimal integer ("001" = 1); anything else is no code."""
    if raw is None:
        return None
    text = raw.strip()
    # isascii: str.isdigit() also accepts "¹" (int() raises) and "١" (a non-ASCII "decimal").
    if not text or not text.isascii() or not (text.isdigit() or (text[0] in "+-" and text[1:].isdigit())):
        return None
    return int(text)


class StatusMapper:
    def __init__(self, data: Mapping[str, Any] | None = None):
        data = data if data is not None else _load_default()
        vocabs = {p.lower(): {raw.lower(): canon for raw, canon in v.items()} for p, v in data["vocabularies"].items()}
        for vocab in vocabs.values():
            for canon in vocab.values():
                if canon != FAILURE and canon not in catalog.STATUSES:
                    raise ValueError(f"status map: {canon!r} is not a canonical status")
        self._vocabs = vocabs
        merged: dict[str, str] = {}
        for vocab in vocabs.values():
            for raw, canon in vocab.items():
                merged.setdefault(raw, canon)
        # An upstream that already normalizes sends canonical names; receipts cannot make
        # a message NOT_SENT (only MessageSent can), so a receipt saying so is a provider error.
        for name in catalog.STATUSES:
            merged.setdefault(name.lower(), name)
        merged["not_sent"] = catalog.PROVIDER_ERROR
        self._merged = merged
        codes = {p.lower(): _code_set(c) for p, c in data["permanent_codes"].items()}
        self._default_codes = codes.pop("default")
        self._codes = codes
        self.map = lru_cache(maxsize=65536)(self._map)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> StatusMapper:
        path = environ.get(_ENV)
        data = _load_default()
        if path:
            with open(path, encoding="utf-8") as fh:
                data = _merge(data, json.load(fh))
        return cls(data)

    def permanent_codes(self, provider: str | None) -> frozenset[int]:
        return self._codes.get((provider or "").lower(), self._default_codes)

    def _map(self, provider: str | None, raw_status: str, error_code: str | None) -> str:
        prov = (provider or "").lower()
        key = raw_status.strip().lower()
        canon = self._vocabs.get(prov, {}).get(key) or self._merged.get(key, catalog.UNKNOWN)
        if canon != FAILURE:
            return canon
        code = parse_code(error_code)
        if code is not None and code in self.permanent_codes(prov):
            return catalog.HARD_BOUNCE
        return catalog.SOFT_BOUNCE
