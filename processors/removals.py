"""Address-book removals (contract §7): when, and under which stable identity.

The event_id is a UUIDv5 of the cause (the message for a permanent error, the unsubscribe
event for a blacklisting), never random: a removal re-emitted after a crash or a replay
carries the same id, so downstream can deduplicate on it.
"""

from __future__ import annotations

import uuid
from typing import Any

from . import catalog
from .events import Unsubscribe
from .message_fold import MessageState, StatusView

NAMESPACE = uuid.UUID("5d6f2f7e-4b7a-4d8e-9b1e-536d7374616c")  # fixed forever: ids must not change
PERMANENT_ERROR = "PERMANENT_ERROR"
BLACKLISTED = "BLACKLISTED"


def removal_id(reason: str, cause: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{reason}:{cause}"))


def permanent_error_removal(state: MessageState, v: StatusView) -> dict[str, Any]:
    send = state.send
    assert send is not None and v.status == catalog.HARD_BOUNCE
    return {
        "event_id": removal_id(PERMANENT_ERROR, state.message_id),
        "phone": send.phone,
        "reason": PERMANENT_ERROR,
        "contact_id": send.contact_id,
        "campaign_id": send.campaign_id,
        "message_id": state.message_id,
        "status": v.status,
        "error_code": v.error_code,
        "provider": v.provider,
        "channel": None,
        "at": v.status_at,
    }


def blacklist_removal(u: Unsubscribe, campaign_id: str | None) -> dict[str, Any]:
    return {
        "event_id": removal_id(BLACKLISTED, u.event_id),
        "phone": u.phone,
        "reason": BLACKLISTED,
        "contact_id": u.contact_id,
        "campaign_id": campaign_id,
        "message_id": None,
        "status": None,
        "error_code": None,
        "provider": None,
        "channel": u.channel,
        "at": u.at,
    }
