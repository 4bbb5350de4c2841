"""What a stage asks the outside world to publish: plain tuples, so stages stay pure."""

from __future__ import annotations

from typing import Any, NamedTuple

from .records import CampaignEvent, PhoneEvent

MESSAGE_STATUS = "message_status"  # -> sms.message-status, key message_id
REMOVAL = "removal"  # -> sms.address-book-removals, key phone
PHONE_EVENT = "phone_event"  # -> internal phone-events topic, key phone (E.164)
CAMPAIGN_EVENT = "campaign_event"  # -> internal campaign-events topic, key campaign_id
SUPPRESSION = "suppression"  # -> sms.suppressions, key phone (E.164), contract §11
DEAD_LETTER = "dead_letter"  # -> sms.dead-letter (receipts whose message never appeared)

#: An output's value: the typed record for the internal topics (``processors.records``),
#: the Avro record as a dict for the contract's topics.
OutValue = PhoneEvent | CampaignEvent | dict[str, Any]


class Out(NamedTuple):
    kind: str
    key: str
    value: OutValue
