"""Stage states <-> bytes, for the changelogged tables.

The codec of the internal records (``records.Codec``: a format-version byte, then
MessagePack arrays in field order, decoded straight into the typed states): compact on disk
and in the changelog, no class names in the data, so a refactor that keeps the fields in
their order does not orphan stored state. An unknown version byte raises
``records.FormatVersionError``, naming it.
"""

from __future__ import annotations

import msgspec

from .campaign_stage import CampaignState
from .message_fold import MessageState
from .phone_stage import PhoneState
from .records import Codec, FormatVersionError, Launch, Partial

__all__ = [
    "MESSAGES",
    "PHONES",
    "CAMPAIGNS",
    "FormatVersionError",
    "encode_message",
    "decode_message",
    "message_event_time",
    "encode_phone",
    "decode_phone",
    "encode_campaign",
    "decode_campaign",
]

MESSAGES: Codec[MessageState] = Codec("message state", MessageState)
PHONES: Codec[PhoneState] = Codec("phone state", PhoneState)

# A campaign state is a plain dataclass whose partials are keyed by their slot: on the wire,
# the partials alone (each knows its slot).
_CampaignWire = tuple[str, int, int, Launch | None, tuple[Partial, ...]]


def _campaign_to_wire(s: CampaignState) -> _CampaignWire:
    return s.campaign_id, s.last_offset, s.updated_at, s.summary, tuple(s.parts.values())


def _campaign_from_wire(w: _CampaignWire) -> CampaignState:
    cid, last_offset, updated_at, summary, parts = w
    return CampaignState(cid, last_offset, updated_at, summary, {p.slot: p for p in parts})


CAMPAIGNS: Codec[CampaignState] = Codec("campaign state", _CampaignWire, _campaign_to_wire, _campaign_from_wire)

encode_message = MESSAGES.encode
decode_message = MESSAGES.decode
encode_phone = PHONES.encode
decode_phone = PHONES.decode
encode_campaign = CAMPAIGNS.encode
decode_campaign = CAMPAIGNS.decode


class _EventTimeOnly(msgspec.Struct, array_like=True):
    """The first fields of a stored ``MessageState``, the others left undecoded."""

    message_id: msgspec.Raw
    partition: msgspec.Raw
    send: msgspec.Raw
    send_ids: msgspec.Raw
    receipt_ids: msgspec.Raw
    best_final: msgspec.Raw
    last_pending_at: msgspec.Raw
    max_event_time: int


_EVENT_TIME = Codec[_EventTimeOnly]("message state", _EventTimeOnly)
assert MessageState.__struct_fields__.index("max_event_time") == len(_EventTimeOnly.__struct_fields__) - 1


def message_event_time(b: bytes) -> int:
    """The latest event time of an encoded message state, without building the state."""
    return _EVENT_TIME.decode(b).max_event_time
