"""Stage states <-> bytes, for the changelogged tables.

Positional JSON arrays: compact on disk and in the changelog, and no class names in the
data, so a refactor of the dataclasses does not orphan stored state. The first element is
a format version, checked on read.
"""
from __future__ import annotations

import operator

import orjson

from .campaign_stage import CampaignState
from .events import MessageSent
from .message_fold import FinalReceipt, MessageState
from .phone_stage import Handled, IndexedSend, PhoneState

_V = 1
_dumps = orjson.dumps  # bytes; the same JSON as the json module's compact form, ~5x faster
_loads = orjson.loads


def _check(data: list, what: str) -> None:
    if not data or data[0] != _V:
        raise ValueError(f"unsupported {what} state format {data[:1]!r}")


_send_fields = operator.attrgetter(*MessageSent.__slots__)  # one C call; a tuple is a JSON array


def encode_message(s: MessageState) -> bytes:
    send = None if s.send is None else _send_fields(s.send)
    best = None if s.best_final is None else list(s.best_final)
    return _dumps([_V, s.message_id, s.partition, send, sorted(s.send_ids), sorted(s.receipt_ids), best,
                   s.last_pending_at, s.max_event_time, s.orphan_reported])


def decode_message(b: bytes) -> MessageState:
    d = _loads(b)
    _check(d, "message")
    _, mid, p, send, sids, rids, best, lpa, met, *rest = d
    return MessageState(mid, p, None if send is None else MessageSent(*send), frozenset(sids), frozenset(rids),
                        None if best is None else FinalReceipt(*best), lpa, met, bool(rest and rest[0]))


def message_event_time(b: bytes) -> int:
    """The latest event time of an encoded message state, without building the state."""
    return _loads(b)[8]


def encode_phone(s: PhoneState) -> bytes:
    return _dumps([_V, s.phone, s.partition, [list(x) for x in s.sends],
                   [[eid, list(h)] for eid, h in s.handled], None if s.latest is None else list(s.latest),
                   s.contact_id])


def decode_phone(b: bytes) -> PhoneState:
    d = _loads(b)
    _check(d, "phone")
    _, phone, p, sends, handled, latest, contact = d
    return PhoneState(phone, p, tuple(IndexedSend(*x) for x in sends),
                      tuple((eid, Handled(*h)) for eid, h in handled), None if latest is None else tuple(latest),
                      contact)


def encode_campaign(s: CampaignState) -> bytes:
    return _dumps([_V, s.campaign_id, s.last_offset, s.updated_at, s.summary,
                   {k: [v, c] for k, (v, c) in s.parts.items()}])


def decode_campaign(b: bytes) -> CampaignState:
    d = _loads(b)
    _check(d, "campaign")
    _, cid, off, upd, summary, parts = d
    return CampaignState(cid, off, upd, summary, {k: (v, c) for k, (v, c) in parts.items()})
