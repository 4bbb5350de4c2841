"""The canonical statuses of contract §4: one table that everything else reads.

Kept as data (not scattered ``if`` chains) so the rates, the fold's tie-break and the
operator report all agree on what a status means.
"""

from __future__ import annotations

from dataclasses import dataclass

PENDING = "PENDING"
PROVIDER_ACCEPTED = "PROVIDER_ACCEPTED"
DELIVERED = "DELIVERED"
SOFT_BOUNCE = "SOFT_BOUNCE"
PROVIDER_ERROR = "PROVIDER_ERROR"
HARD_BOUNCE = "HARD_BOUNCE"
UNKNOWN = "UNKNOWN"
NOT_SENT = "NOT_SENT"


@dataclass(frozen=True)
class StatusInfo:
    name: str
    category: str
    final: bool
    smsmode: str
    emarsys: str


STATUSES: dict[str, StatusInfo] = {
    s.name: s
    for s in (
        StatusInfo(PENDING, "waiting", False, "Waiting", "With carrier"),
        StatusInfo(PROVIDER_ACCEPTED, "receipt", True, "Sent", "Provider accepted"),
        StatusInfo(DELIVERED, "receipt", True, "Received / Operator delivered", "Delivery successful"),
        StatusInfo(
            SOFT_BOUNCE, "temporary_error", True, "Operator / absence temporary error", "Rejected (soft bounce)"
        ),
        StatusInfo(PROVIDER_ERROR, "temporary_error", True, "Other error", "Provider error"),
        StatusInfo(
            HARD_BOUNCE, "permanent_error", True, "Permanent error absence / Routing error", "Rejected (hard bounce)"
        ),
        StatusInfo(UNKNOWN, "unknown", True, "\u2014", "Delivery status unknown"),
        StatusInfo(NOT_SENT, "not_sent", True, "(not sent, with reason)", "Number of SMS not sent"),
    )
}

#: Rule 3's tie-break between two final statuses at the same carrier time: higher wins.
TIE_RANK: dict[str, int] = {
    HARD_BOUNCE: 6,
    DELIVERED: 5,
    SOFT_BOUNCE: 4,
    UNKNOWN: 3,
    PROVIDER_ACCEPTED: 2,
    PROVIDER_ERROR: 1,
}

#: Contract §6: each rate's numerator, as statuses (``unsubscribe`` is counted apart).
RATE_NUMERATORS: dict[str, tuple[str, ...]] = {
    "receipt": (DELIVERED, PROVIDER_ACCEPTED),
    "delivery": (DELIVERED,),
    "waiting": (PENDING,),
    "temporary_error": (SOFT_BOUNCE, PROVIDER_ERROR),
    "permanent_error": (HARD_BOUNCE,),
    "unknown": (UNKNOWN,),
}
RATE_NAMES: tuple[str, ...] = tuple(RATE_NUMERATORS) + ("unsubscribe",)

NOT_SENT_REASONS = ("HARD_BOUNCE", "OPTED_OUT", "INVALID_NUMBER", "INSUFFICIENT_CREDIT", "DUPLICATE", "OTHER")


def category(status: str) -> str:
    return STATUSES[status].category


def is_final(status: str) -> bool:
    return STATUSES[status].final
