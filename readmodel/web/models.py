"""The JSON shapes of the API, for its OpenAPI document (contract §10: the Avro records' names).

Responses are serialized straight from the read model's dicts (orjson); these models only
describe them, and the schemathesis test checks that they describe them truthfully.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from processors import catalog

Status = Literal[
    "PENDING", "PROVIDER_ACCEPTED", "DELIVERED", "SOFT_BOUNCE", "PROVIDER_ERROR", "HARD_BOUNCE", "UNKNOWN", "NOT_SENT"
]
Category = Literal["receipt", "waiting", "temporary_error", "permanent_error", "unknown", "not_sent"]
NotSentReason = Literal["HARD_BOUNCE", "OPTED_OUT", "INVALID_NUMBER", "INSUFFICIENT_CREDIT", "DUPLICATE", "OTHER"]
Kind = Literal["BATCH", "AUTOMATED"]
RemovalReason = Literal["PERMANENT_ERROR", "BLACKLISTED", "OTHER"]
Sort = Literal["launched_at", "-launched_at", "name", "-sent"]

assert set(Status.__args__) == set(catalog.STATUSES)  # type: ignore[attr-defined]
assert set(Category.__args__) == {s.category for s in catalog.STATUSES.values()}  # type: ignore[attr-defined]
assert set(NotSentReason.__args__) == set(catalog.NOT_SENT_REASONS)  # type: ignore[attr-defined]


class CampaignStats(BaseModel):
    campaign_id: str
    name: str | None = None
    kind: Literal["BATCH", "AUTOMATED", "OTHER"] | None = None
    text: str | None = None
    sender_id: str | None = None
    sms_type: str | None = None
    created_at: int | None = None
    launched_at: int | None = None
    launch_list_size: int | None = None
    version: int
    updated_at: int
    sent: int
    not_sent: int
    not_sent_by_reason: dict[str, int]
    status_counts: dict[str, int]
    unsubscribed: int
    credits: float
    rates: dict[str, float]
    first_sent_at: int | None = None
    last_event_at: int | None = None
    # Contract §11 (absent from records published before: empty)
    delivery_seconds: dict[str, int] = {}
    by_provider: dict[str, dict[str, int]] = {}
    by_operator: dict[str, dict[str, int]] = {}


class MessageStatus(BaseModel):
    message_id: str
    campaign_id: str
    contact_id: str | None = None
    phone: str
    status: Status
    category: Category
    error_code: str | None = None
    provider: str | None = None
    sent_at: int
    status_at: int
    version: int
    not_sent_reason: str | None = None
    phone_valid: bool


class MessageWithHistory(MessageStatus):
    history: list[MessageStatus]


class Removal(BaseModel):
    event_id: str
    phone: str
    reason: RemovalReason
    contact_id: str | None = None
    campaign_id: str | None = None
    message_id: str | None = None
    status: str | None = None
    error_code: str | None = None
    provider: str | None = None
    channel: str | None = None
    at: int


class Suppression(BaseModel):
    """Contract §11; a phone never seen has only ``phone``, ``suppressed`` and ``reasons``."""

    phone: str
    suppressed: bool
    reasons: list[RemovalReason]
    blacklisted_at: int | None = None
    permanent_error_at: int | None = None
    contact_id: str | None = None
    campaign_id: str | None = None
    message_id: str | None = None
    version: int | None = None
    updated_at: int | None = None


#: Phones per suppression check (contract §11).
MAX_CHECK_PHONES = 10_000


def _no_nul(v: str) -> str:
    # PostgreSQL cannot even compare a text with NUL: the caller's error, not a 500.
    if "\x00" in v:
        raise ValueError("a NUL character is not allowed in a phone number")
    return v


CheckedPhone = Annotated[str, StringConstraints(max_length=64), AfterValidator(_no_nul)]


class SuppressionCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phones: list[CheckedPhone] = Field(
        max_length=MAX_CHECK_PHONES,
        description=f"at most {MAX_CHECK_PHONES} phones, E.164 or in the default region's national format",
    )


class Suppressed(BaseModel):
    index: int = Field(description="the phone's position in the request's list (0-based)")
    phone: str
    reasons: list[RemovalReason]


class SuppressionCheckAnswer(BaseModel):
    suppressed: list[Suppressed]


class CampaignPage(BaseModel):
    items: list[CampaignStats]
    next_cursor: str | None


class MessagePage(BaseModel):
    items: list[MessageStatus]
    next_cursor: str | None


class RemovalPage(BaseModel):
    items: list[Removal]
    next_cursor: str | None


class Problem(BaseModel):
    detail: str


class Health(BaseModel):
    alive: bool


ERRORS = {
    400: {"model": Problem, "description": "a bad query parameter or cursor"},
    401: {"model": Problem, "description": "a token is configured and the request lacks it"},
}
#: A phone never seen is an answer (200), so a 404 there means the route itself did not match.
NO_ROUTE = {404: {"model": Problem, "description": "no such route (a path with a line break, say)"}}
NOT_FOUND = {404: {"model": Problem, "description": "no such campaign or message in the read model"}}
