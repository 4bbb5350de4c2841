"""Input events as frozen values, and the checks that turn a decoded record into one.

The events are frozen ``msgspec.Struct`` records (``processors.records`` has their codec):
``MessageSent`` is part of a stored message state and ``Unsubscribe`` travels on the
internal phone-events log as it is.

Validation lives here, before any fold, so that a record breaking the contract becomes a
dead letter with a reason instead of a corrupted count (contract §8). Timestamps are int
milliseconds (UTC): bounds are fixed, not relative to the wall clock, so that replaying a
topic next year accepts and rejects exactly what it did today.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from .phones import normalize

MIN_TS = 946_684_800_000  # 2000-01-01T00:00Z
MAX_TS = 4_102_444_800_000  # 2100-01-01T00:00Z
MAX_ID_LEN = 256
MAX_TEXT_LEN = 10_000  # free text (campaign name and text, inbound replies); ~65 SMS segments


class InvalidEvent(ValueError):
    """A record that decodes but breaks the contract; ``kind`` classifies it for metrics."""

    def __init__(self, kind: str, reason: str, event_id: str | None = None):
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.event_id = event_id


def _id(rec: Mapping[str, Any], field: str, ev: str | None = None) -> str:
    value = rec.get(field)
    if not isinstance(value, str) or not value.strip():
        raise InvalidEvent("missing_id", f"field {field!r} is missing or empty", ev)
    if len(value) > MAX_ID_LEN:
        raise InvalidEvent("invalid_field", f"field {field!r} is {len(value)} characters long (max {MAX_ID_LEN})", ev)
    return value


def _opt_id(rec: Mapping[str, Any], field: str, ev: str | None) -> str | None:
    value = rec.get(field)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return _id(rec, field, ev)


def _opt_ts(rec: Mapping[str, Any], field: str, ev: str | None) -> int | None:
    return None if rec.get(field) is None else _ts(rec, field, ev)


def _ts(rec: Mapping[str, Any], field: str, ev: str | None) -> int:
    value = rec.get(field)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidEvent("invalid_timestamp", f"field {field!r} is not a timestamp in milliseconds: {value!r}", ev)
    if not MIN_TS <= value < MAX_TS:
        raise InvalidEvent(
            "absurd_timestamp",
            f"field {field!r} = {value} ms is outside 2000-01-01..2100-01-01 "
            "(seconds or microseconds instead of milliseconds?)",
            ev,
        )
    return value


def _phone(rec: Mapping[str, Any], ev: str, region: str) -> tuple[str, bool]:
    """E.164 when parseable; otherwise kept as given and flagged (never dropped)."""
    raw = rec.get("phone")
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidEvent("missing_id", "field 'phone' is missing or empty", ev)
    if len(raw) > 64:
        raise InvalidEvent("invalid_field", f"field 'phone' is {len(raw)} characters long (max 64)", ev)
    return normalize(raw, region)


def _str(rec: Mapping[str, Any], field: str, ev: str | None, limit: int = MAX_ID_LEN) -> str | None:
    """An optional free string, bounded: an oversized one is bad input, not something to carry downstream."""
    value = rec.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidEvent("invalid_field", f"field {field!r} must be a string, got a {type(value).__name__}", ev)
    if len(value) > limit:
        raise InvalidEvent("invalid_field", f"field {field!r} is {len(value)} characters long (max {limit})", ev)
    return value


def _enum(rec: Mapping[str, Any], field: str, allowed: frozenset[str], ev: str | None) -> str:
    value = rec.get(field)
    if value not in allowed:
        raise InvalidEvent(
            "unknown_enum", f"field {field!r} has value {value!r}, expected one of {sorted(allowed)}", ev
        )
    return str(value)


class CampaignLaunched(msgspec.Struct, frozen=True, array_like=True, gc=False):
    event_id: str
    campaign_id: str
    name: str
    kind: str
    text: str
    sender_id: str
    sms_type: str
    created_at: int
    launched_at: int
    launch_list_size: int

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> CampaignLaunched:
        ev = _id(rec, "event_id")
        size = rec.get("launch_list_size")
        if not isinstance(size, int) or size < 0:
            raise InvalidEvent("invalid_field", f"launch_list_size must be a non-negative integer, got {size!r}", ev)
        return cls(
            ev,
            _id(rec, "campaign_id", ev),
            _str(rec, "name", ev, MAX_TEXT_LEN) or "",
            _enum(rec, "kind", _KINDS, ev),
            _str(rec, "text", ev, MAX_TEXT_LEN) or "",
            _str(rec, "sender_id", ev) or "",
            _str(rec, "sms_type", ev) or "",
            _ts(rec, "created_at", ev),
            _ts(rec, "launched_at", ev),
            size,
        )


_KINDS = frozenset({"BATCH", "AUTOMATED", "OTHER"})
_OUTCOMES = frozenset({"SUBMITTED", "PROVIDER_ERROR", "NOT_SENT"})
_ACTIONS = frozenset({"UNSUBSCRIBE", "RESUBSCRIBE"})
_CHANNELS = frozenset({"LINK", "STOP_KEYWORD", "MANUAL", "COMPLAINT", "OTHER"})


class MessageSent(msgspec.Struct, frozen=True, array_like=True, gc=False):
    event_id: str
    campaign_id: str
    message_id: str
    contact_id: str | None
    phone: str
    phone_valid: bool
    sent_at: int
    outcome: str
    not_sent_reason: str | None
    segments: int
    credits: float
    provider: str | None
    country: str | None
    operator: str | None

    @property
    def event_time(self) -> int:
        return self.sent_at

    @classmethod
    def from_record(cls, rec: Mapping[str, Any], region: str = "FR") -> MessageSent:
        ev = _id(rec, "event_id")
        phone, valid = _phone(rec, ev, region)
        segments = rec.get("segments", 1)
        credits = rec.get("credits", 0.0)
        if not isinstance(segments, int) or segments < 0:
            raise InvalidEvent("invalid_field", f"segments must be >= 0, got {segments!r}", ev)
        if not isinstance(credits, (int, float)) or not (0 <= credits < 1e9):
            raise InvalidEvent("invalid_field", f"credits must be a finite number >= 0, got {credits!r}", ev)
        outcome = _enum(rec, "outcome", _OUTCOMES, ev)
        return cls(
            ev,
            _id(rec, "campaign_id", ev),
            _id(rec, "message_id", ev),
            _opt_id(rec, "contact_id", ev),
            phone,
            valid,
            _ts(rec, "sent_at", ev),
            outcome,
            (rec.get("not_sent_reason") or "OTHER") if outcome == "NOT_SENT" else None,
            segments,
            float(credits),
            _str(rec, "provider", ev),
            _str(rec, "country", ev),
            _str(rec, "operator", ev),
        )


class DeliveryReceipt(msgspec.Struct, frozen=True, array_like=True, gc=False):
    event_id: str
    message_id: str
    campaign_id: str | None
    provider: str | None
    status: str
    error_code: str | None
    done_at: int | None
    received_at: int

    @property
    def event_time(self) -> int:
        return self.received_at

    @property
    def carrier_time(self) -> int:
        return self.done_at if self.done_at is not None else self.received_at

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> DeliveryReceipt:
        ev = _id(rec, "event_id")
        status = rec.get("status")
        if not isinstance(status, str) or not status.strip():
            raise InvalidEvent("missing_field", "field 'status' is missing or empty", ev)
        if len(status) > MAX_ID_LEN:
            raise InvalidEvent("invalid_field", f"status is {len(status)} characters long", ev)
        code = rec.get("error_code")
        if code is not None and not isinstance(code, str):
            raise InvalidEvent("invalid_field", f"error_code must be a string, got {code!r}", ev)
        if code is not None and len(code) > MAX_ID_LEN:
            raise InvalidEvent("invalid_field", f"error_code is {len(code)} characters long", ev)
        provider = _str(rec, "provider", ev)
        return cls(
            ev,
            _id(rec, "message_id", ev),
            _opt_id(rec, "campaign_id", ev),
            provider.lower() if isinstance(provider, str) and provider else None,
            status,
            code,
            _opt_ts(rec, "done_at", ev),
            _ts(rec, "received_at", ev),
        )


class Unsubscribe(msgspec.Struct, frozen=True, array_like=True, gc=False, tag=2):
    """Also a phone event (``records.PhoneEvent``): the tag tells it from a ``SendIndexed``."""

    event_id: str
    phone: str
    phone_valid: bool
    contact_id: str | None
    campaign_id: str | None
    action: str
    channel: str
    text: str | None
    at: int

    @property
    def event_time(self) -> int:
        return self.at

    @classmethod
    def from_record(cls, rec: Mapping[str, Any], region: str = "FR") -> Unsubscribe:
        ev = _id(rec, "event_id")
        phone, valid = _phone(rec, ev, region)
        return cls(
            ev,
            phone,
            valid,
            _opt_id(rec, "contact_id", ev),
            _opt_id(rec, "campaign_id", ev),
            _enum(rec, "action", _ACTIONS, ev),
            _enum(rec, "channel", _CHANNELS, ev),
            _str(rec, "text", ev, MAX_TEXT_LEN),
            _ts(rec, "at", ev),
        )
