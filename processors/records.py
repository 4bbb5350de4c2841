"""The internal records: what the stages write to the internal topics, and their one codec.

Two internal logs connect the stages (contract §4): *phone events* (key: the phone), the
index of a SUBMITTED send and the unsubscribes, read by the phone stage; and *campaign
events* (key: the campaign id), a campaign's launch summary and the partials of the
message and phone stages, read by the campaign stage. Each record is a frozen
``msgspec.Struct``; the stored states of the stages (``state_codec``) use the same codec.

The codec (``Codec``) is MessagePack through msgspec, the records encoded as arrays in
field order (no field names in the bytes: the names live here), decoded straight into the
typed records, with one format-version byte in front. It was chosen by measurement
(``bench/record_formats.py``): against the positional JSON arrays it replaced, a message
state encodes and decodes ~5x faster and takes ~15 % fewer bytes; Avro schemaless
(fastavro) was more compact still but ~15x slower, the conversion to and from dicts
included. The version byte is there for the next change of a record: bump ``FORMAT_VERSION``
and give the codec a reader of the old version (``Codec(..., readers={1: ...})``).

Unions are tagged (the tag is the first element of the array): ``PhoneEvent`` and
``CampaignEvent`` decode to whichever record was written. A record's fields may only be
appended to at the end, with a default, under the same version; anything else is a new
version.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import Any, Generic, NamedTuple, TypeVar

import msgspec

from .events import CampaignLaunched, Unsubscribe

#: The version byte every internal record and stored state starts with.
FORMAT_VERSION = 1


class FormatVersionError(ValueError):
    """Bytes written in a format version this code cannot read (or not a record at all)."""


class Source(enum.IntEnum):
    """Which stage a partial comes from: its slot in a campaign state is (source, partition)."""

    MESSAGES = 1  # the message stage (sends, receipts, statuses)
    UNSUBSCRIBES = 2  # the phone stage (attributed unsubscribes)


class Slot(NamedTuple):
    source: Source
    partition: int


# --- phone events (internal phone-events topic, key phone) ----------------------------------
class SendIndexed(msgspec.Struct, frozen=True, array_like=True, gc=False, tag=1):
    """A SUBMITTED send, indexed under its phone for STOP attribution (message -> phone stage)."""

    phone: str
    message_id: str
    campaign_id: str
    sent_at: int


class HardBounce(msgspec.Struct, frozen=True, array_like=True, gc=False, tag=3):
    """A message to ``phone`` became ``HARD_BOUNCE`` (``in_force``) or ceased to be one (a
    later receipt won, contract §5): the one message-stage fact a phone's suppression needs
    (contract §11). ``version`` is the message's status version at the time, so that the
    phone stage keeps the latest fact of each message whatever order the facts arrive in."""

    phone: str
    message_id: str
    version: int
    in_force: bool
    at: int  # the winning HARD_BOUNCE receipt's carrier time (of the last one, when it ceased)
    contact_id: str | None
    campaign_id: str


#: ``events.Unsubscribe`` itself is the other phone event (its tag is 2).
PhoneEvent = SendIndexed | Unsubscribe | HardBounce


# --- campaign events (internal campaign-events topic, key campaign_id) ------------------------
class Launch(msgspec.Struct, frozen=True, array_like=True, gc=False, tag=1):
    """A campaign's summary, from its CampaignLaunched. ``at`` is when it came in (processing
    time, like a partial's): ``CampaignStats.updated_at`` is one clock."""

    at: int
    name: str
    kind: str
    text: str
    sender_id: str
    sms_type: str
    created_at: int
    launched_at: int
    launch_list_size: int

    @classmethod
    def of(cls, c: CampaignLaunched, at: int) -> Launch:
        return cls(at, c.name, c.kind, c.text, c.sender_id, c.sms_type, c.created_at, c.launched_at, c.launch_list_size)


class MessageVersion(NamedTuple):
    """A message partial's version vector, compared componentwise."""

    sends: int  # send events folded into the partition's messages of the campaign
    receipts: int  # receipt events, likewise
    watermark: int  # the partition's event-time watermark (timeouts move it)


class UnsubscribeVersion(NamedTuple):
    attributions: int  # unsubscribe events attributed to the campaign by the partition


class MessageCounts(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One message partition's absolute counters of one campaign (read-only maps)."""

    sent: int
    not_sent: int
    not_sent_by_reason: dict[str, int]
    status_counts: dict[str, int]
    credits_micro: int  # integer micro-credits: the sum does not depend on the order of additions
    first_sent_at: int | None
    last_event_at: int | None
    # Contract §11 (appended with defaults: partials and states written before still read).
    delivery_seconds: dict[str, int] = {}  # DELIVERED messages per time-to-delivery bucket
    by_provider: dict[str, dict[str, int]] = {}  # sent messages: provider -> status -> count
    by_operator: dict[str, dict[str, int]] = {}


class MessagePartial(msgspec.Struct, frozen=True, array_like=True, gc=False, tag=2):
    campaign_id: str
    partition: int
    version: MessageVersion
    counts: MessageCounts
    at: int  # when it was flushed (the writer's clock)

    @property
    def slot(self) -> Slot:
        return Slot(Source.MESSAGES, self.partition)


class UnsubscribePartial(msgspec.Struct, frozen=True, array_like=True, gc=False, tag=3):
    campaign_id: str
    partition: int
    version: UnsubscribeVersion
    unsubscribed: int  # distinct phones attributed to the campaign
    last_event_at: int | None
    at: int

    @property
    def slot(self) -> Slot:
        return Slot(Source.UNSUBSCRIBES, self.partition)


Partial = MessagePartial | UnsubscribePartial
CampaignEvent = Launch | MessagePartial | UnsubscribePartial


# --- rerouted messages (internal rerouted-messages topic, key message_id) -------------------
class Rerouted(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """A message input found on another partition than its message's (processors/placement),
    forwarded to that partition as it was read: where it came from (dead letters and logs
    name the original record) and its raw key and value (decoded where it is folded)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


# --- the codec -----------------------------------------------------------------------------
T = TypeVar("T")
_encoder = msgspec.msgpack.Encoder()


class Codec(Generic[T]):
    """Records of one kind <-> ``bytes([FORMAT_VERSION]) + MessagePack``.

    ``wire`` is the type msgspec decodes (a record, a tagged union, or a tuple of them);
    ``to_wire``/``from_wire`` convert when the record is not itself that type. ``readers``
    maps older format versions to functions reading their payload (none yet).
    """

    def __init__(
        self,
        what: str,
        wire: Any,
        to_wire: Callable[[T], Any] | None = None,
        from_wire: Callable[[Any], T] | None = None,
        readers: Mapping[int, Callable[[memoryview], T]] | None = None,
    ):
        self.what = what
        decode = msgspec.msgpack.Decoder(wire).decode
        self._head = bytes([FORMAT_VERSION])
        self._to_wire = to_wire
        if from_wire is None:
            self._read_current: Callable[[memoryview], T] = decode
        else:

            def _read_current(payload: memoryview) -> T:
                return from_wire(decode(payload))

            self._read_current = _read_current
        self.readers: dict[int, Callable[[memoryview], T]] = {**(readers or {}), FORMAT_VERSION: self._read_current}

    def encode(self, value: T) -> bytes:
        return self._head + _encoder.encode(value if self._to_wire is None else self._to_wire(value))

    def decode(self, data: bytes) -> T:
        if data and data[0] == FORMAT_VERSION:  # the common case first
            return self._read_current(memoryview(data)[1:])
        return self._read_old(data)

    def _read_old(self, data: bytes) -> T:
        if not data:
            raise FormatVersionError(f"empty {self.what} record: no format version byte")
        reader = self.readers.get(data[0])
        if reader is None:
            raise FormatVersionError(
                f"{self.what} record in format version {data[0]}, which this code cannot read "
                f"(it reads {', '.join(map(str, sorted(self.readers)))}): written by a newer smstally, or not a "
                f"{self.what} record"
            )
        return reader(memoryview(data)[1:])


PHONE_EVENTS: Codec[PhoneEvent] = Codec("phone event", PhoneEvent)
CAMPAIGN_EVENTS: Codec[CampaignEvent] = Codec("campaign event", CampaignEvent)

REROUTED: Codec[Rerouted] = Codec("rerouted message", Rerouted)

encode_phone_event = PHONE_EVENTS.encode
decode_phone_event = PHONE_EVENTS.decode
encode_campaign_event = CAMPAIGN_EVENTS.encode
decode_campaign_event = CAMPAIGN_EVENTS.decode

_INTERNAL = (SendIndexed, Unsubscribe, HardBounce, Launch, MessagePartial, UnsubscribePartial)
_HEAD = bytes([FORMAT_VERSION])


def encode_internal(value: object) -> bytes:
    """A stage output's value for its internal topic, phone or campaign events alike (the
    two logs share the format). Anything but an internal event record is a TypeError."""
    if not isinstance(value, _INTERNAL):
        raise TypeError(f"not an internal event record: {type(value).__name__}")
    return _HEAD + _encoder.encode(value)
