"""What is in force for a phone (contract §11), derived from what its phone state holds.

A platform filters its send list with this before it pays to text a number, so it has to
be a function of the set of events, like every figure: the blacklist is the latest
unsubscribe action by (at, event_id) (§7); a hard bounce is in force while its message is
``HARD_BOUNCE`` with a carrier time later than the phone's latest ``RESUBSCRIBE``, which
the message stage reports as one fact per change (``records.HardBounce``), each message's
latest fact kept by its version. Nothing here depends on the order the facts came in.

Where the contract is silent:
- ``blacklisted_at`` is the time of the first ``UNSUBSCRIBE`` after the latest
  ``RESUBSCRIBE`` (the blacklisting one, when events come in time order), and
  ``permanent_error_at`` the earliest carrier time of the hard bounces in force;
- the latest cause is the cause in force with the latest time (ties by id): an unsubscribe
  (its contact_id and the campaign_id it names; a STOP reply names none, its attribution is
  in the BLACKLISTED removal) or a hard-bounced message (its contact, campaign and id);
- the version is the number of distinct unsubscribes plus the sum of the latest fact
  versions of the phone's messages: it grows with every new fact, whatever their order.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .removals import BLACKLISTED, PERMANENT_ERROR


class Cause(NamedTuple):
    """An UNSUBSCRIBE after the phone's latest RESUBSCRIBE (kept in (at, event_id) order)."""

    at: int
    event_id: str
    contact_id: str | None
    campaign_id: str | None


class Bounce(NamedTuple):
    """The latest ``HardBounce`` fact of one message to the phone."""

    message_id: str
    version: int
    in_force: bool
    at: int
    contact_id: str | None
    campaign_id: str


class InForce(NamedTuple):
    """A Suppression's content without its version and time: what a change is compared on."""

    reasons: tuple[str, ...]
    blacklisted_at: int | None
    permanent_error_at: int | None
    contact_id: str | None
    campaign_id: str | None
    message_id: str | None

    @property
    def suppressed(self) -> bool:
        return bool(self.reasons)


NOTHING = InForce((), None, None, None, None, None)


def in_force(
    blacklisted: bool,
    unsubscribes: tuple[Cause, ...],
    resubscribed_at: int | None,
    bounces: tuple[Bounce, ...],
    fallback_blacklisted_at: int | None = None,
) -> InForce:
    """``fallback_blacklisted_at``: for a phone state written before §11 kept its causes."""
    hard = [b for b in bounces if b.in_force and (resubscribed_at is None or b.at > resubscribed_at)]
    if not blacklisted and not hard:
        return NOTHING
    reasons = (PERMANENT_ERROR,) * bool(hard) + (BLACKLISTED,) * blacklisted
    latest: tuple[int, str, str | None, str | None, str | None] | None = None
    if blacklisted and unsubscribes:
        u = unsubscribes[-1]
        latest = (u.at, u.event_id, u.contact_id, u.campaign_id, None)
    for b in hard:
        cand = (b.at, b.message_id, b.contact_id, b.campaign_id, b.message_id)
        if latest is None or cand[:2] > latest[:2]:
            latest = cand
    _, _, contact, campaign, message = latest or (0, "", None, None, None)
    return InForce(
        reasons,
        (unsubscribes[0].at if unsubscribes else fallback_blacklisted_at) if blacklisted else None,
        min(b.at for b in hard) if hard else None,
        contact,
        campaign,
        message,
    )


def record(phone: str, f: InForce, version: int, now_ms: int) -> dict[str, Any]:
    """The ``smstally.Suppression`` Avro record."""
    return {
        "phone": phone,
        "suppressed": f.suppressed,
        "reasons": list(f.reasons),
        "blacklisted_at": f.blacklisted_at,
        "permanent_error_at": f.permanent_error_at,
        "contact_id": f.contact_id,
        "campaign_id": f.campaign_id,
        "message_id": f.message_id,
        "version": version,
        "updated_at": now_ms,
    }
