"""The dashboard's vocabulary, as data: statuses, categories, rates and reasons.

Everything is derived from :mod:`processors.catalog` (contract §4, §6, §7) so the
dashboard can never disagree with the processor about what a status means. The
explanations are the project's own words; the smsmode and Emarsys names are the
ones those products show, so that users of either can find their bearings.
"""

from __future__ import annotations

from dataclasses import dataclass

from processors import catalog

#: Display order of the categories (the order of the smsmode report), then not sent.
CATEGORY_ORDER: tuple[str, ...] = (
    "receipt",
    "waiting",
    "temporary_error",
    "permanent_error",
    "unknown",
    "not_sent",
)

CATEGORY_LABELS: dict[str, str] = {
    "receipt": "Receipt",
    "waiting": "Waiting",
    "temporary_error": "Temporary error",
    "permanent_error": "Permanent error",
    "unknown": "Unknown",
    "not_sent": "Not sent",
}

#: Display order of the statuses: grouped by category, the most common first.
STATUS_ORDER: tuple[str, ...] = (
    catalog.DELIVERED,
    catalog.PROVIDER_ACCEPTED,
    catalog.PENDING,
    catalog.SOFT_BOUNCE,
    catalog.PROVIDER_ERROR,
    catalog.HARD_BOUNCE,
    catalog.UNKNOWN,
    catalog.NOT_SENT,
)
#: The statuses of sent messages (the "contacts reached" table).
SENT_STATUS_ORDER: tuple[str, ...] = tuple(s for s in STATUS_ORDER if s != catalog.NOT_SENT)

#: Our own short name of each status (used where no product wording is chosen).
STATUS_LABELS: dict[str, str] = {
    catalog.PENDING: "Waiting",
    catalog.PROVIDER_ACCEPTED: "Accepted by provider",
    catalog.DELIVERED: "Delivered",
    catalog.SOFT_BOUNCE: "Soft bounce",
    catalog.PROVIDER_ERROR: "Provider error",
    catalog.HARD_BOUNCE: "Hard bounce",
    catalog.UNKNOWN: "Unknown",
    catalog.NOT_SENT: "Not sent",
}

RATE_ORDER: tuple[str, ...] = catalog.RATE_NAMES
RATE_LABELS: dict[str, str] = {
    "receipt": "Receipt rate",
    "delivery": "Delivery rate",
    "waiting": "Waiting rate",
    "temporary_error": "Temporary error rate",
    "permanent_error": "Permanent error rate",
    "unknown": "Unknown rate",
    "unsubscribe": "Unsubscribe rate",
}
RATE_HINTS: dict[str, str] = {
    "receipt": "Delivered or accepted by the provider",
    "delivery": "Confirmed on the handset (Emarsys)",
    "waiting": "No final report yet",
    "temporary_error": "Soft bounces and provider errors",
    "permanent_error": "Hard bounces: numbers removed",
    "unknown": "No verdict from the carrier",
    "unsubscribe": "Opted out after this campaign",
}
#: The category whose colour a rate is drawn in.
RATE_CATEGORY: dict[str, str] = {
    "receipt": "receipt",
    "delivery": "receipt",
    "waiting": "waiting",
    "temporary_error": "temporary_error",
    "permanent_error": "permanent_error",
    "unknown": "unknown",
    "unsubscribe": "not_sent",
}

NOT_SENT_REASONS: tuple[str, ...] = catalog.NOT_SENT_REASONS
NOT_SENT_REASON_LABELS: dict[str, str] = {
    "HARD_BOUNCE": "Known hard bounce",
    "OPTED_OUT": "Opted out",
    "INVALID_NUMBER": "Invalid number",
    "INSUFFICIENT_CREDIT": "Insufficient credit",
    "DUPLICATE": "Duplicate recipient",
    "OTHER": "Other or no reason given",
}
NOT_SENT_REASON_HINTS: dict[str, str] = {
    "HARD_BOUNCE": "Bounced permanently before; filtered out, no credit spent.",
    "OPTED_OUT": "On the blacklist; filtered out, no credit spent.",
    "INVALID_NUMBER": "Not a usable mobile number.",
    "INSUFFICIENT_CREDIT": "Blocked because the balance ran out: top up, then send to this list again.",
    "DUPLICATE": "The same number appeared more than once in the launch list.",
    "OTHER": "Any other reason, including none reported.",
}

REMOVAL_REASON_LABELS: dict[str, str] = {
    "PERMANENT_ERROR": "Permanent error",
    "BLACKLISTED": "Unsubscribed",
    "OTHER": "Other",
}
#: A suppression reason in force, in plain words (contract §11), and the record's field that
#: says since when.
SUPPRESSION_REASONS: dict[str, tuple[str, str | None]] = {
    "BLACKLISTED": ("The number unsubscribed: it is on the blacklist", "blacklisted_at"),
    "PERMANENT_ERROR": ("A message to this number bounced permanently: the number is dead", "permanent_error_at"),
    "OTHER": ("Another reason", None),
}
CHANNEL_LABELS: dict[str, str] = {
    "LINK": "Unsubscribe link",
    "STOP_KEYWORD": "STOP reply",
    "MANUAL": "Manual",
    "COMPLAINT": "Complaint",
    "OTHER": "Other",
}
KIND_LABELS: dict[str, str] = {"BATCH": "Batch", "AUTOMATED": "Automated", "OTHER": "Other"}


@dataclass(frozen=True)
class GlossaryEntry:
    status: str  # a canonical status, or "UNSUBSCRIBED" for the unsubscribe row
    label: str
    category: str
    category_label: str
    final: bool
    meaning: str
    address_book: str  # "kept" or "removed"
    address_book_why: str
    smsmode: str
    emarsys: str
    is_status: bool = True


_MEANING: dict[str, tuple[str, str, str]] = {
    # status: (meaning, kept/removed, why)
    catalog.DELIVERED: (
        "The carrier confirmed that the phone received the message.",
        "kept",
        "The number works.",
    ),
    catalog.PROVIDER_ACCEPTED: (
        "The SMS provider took the message for delivery and sends no further report for it.",
        "kept",
        "Nothing suggests a problem with the number.",
    ),
    catalog.PENDING: (
        "Handed over for delivery; no final report has come back yet. "
        "A message still waiting after the configured timeout becomes Unknown.",
        "kept",
        "No verdict on the number yet.",
    ),
    catalog.SOFT_BOUNCE: (
        "The phone could not be reached for now (switched off, out of coverage, message expired), "
        "or the failure came with a code that does not prove the number is dead.",
        "kept",
        "A temporary failure says nothing final: the number is still valid.",
    ),
    catalog.PROVIDER_ERROR: (
        "The provider refused or did not answer the send request, so no carrier ever saw the message.",
        "kept",
        "The fault lies in the sending chain, not with the number.",
    ),
    catalog.HARD_BOUNCE: (
        "The carrier answered with an error code that proves the number does not exist or cannot be routed.",
        "removed",
        "Unambiguous evidence that the number is dead: a removal (permanent error) is published.",
    ),
    catalog.UNKNOWN: (
        "No verdict: the carrier could not say whether the message arrived, "
        "or no final report came before the waiting timeout. A late report still corrects it.",
        "kept",
        "No evidence either way, so the number stays.",
    ),
    catalog.NOT_SENT: (
        "Filtered out before sending, for the reason shown in the Not sent table; no credit is spent.",
        "kept",
        "Nothing was sent, so nothing new is learned. Known hard bounces and opt-outs were removed earlier.",
    ),
}


def _smsmode_name(name: str) -> str:
    return "none" if name in ("\u2014", "-", "") else name


def _entries() -> tuple[GlossaryEntry, ...]:
    out: list[GlossaryEntry] = []
    for status in STATUS_ORDER:
        info = catalog.STATUSES[status]
        meaning, book, why = _MEANING[status]
        out.append(
            GlossaryEntry(
                status=status,
                label=STATUS_LABELS[status],
                category=info.category,
                category_label=CATEGORY_LABELS[info.category],
                final=info.final,
                meaning=meaning,
                address_book=book,
                address_book_why=why,
                smsmode=_smsmode_name(info.smsmode),
                emarsys=info.emarsys,
            )
        )
    # Any status a later catalog adds still gets a row, in its own words or not.
    for status, info in catalog.STATUSES.items():
        if status not in STATUS_ORDER:
            out.append(
                GlossaryEntry(
                    status=status,
                    label=status.replace("_", " ").capitalize(),
                    category=info.category,
                    category_label=CATEGORY_LABELS.get(info.category, info.category),
                    final=info.final,
                    meaning="",
                    address_book="kept",
                    address_book_why="",
                    smsmode=_smsmode_name(info.smsmode),
                    emarsys=info.emarsys,
                )
            )
    out.append(
        GlossaryEntry(
            status="UNSUBSCRIBED",
            label="Unsubscribed",
            category="not_sent",
            category_label="Unsubscribe",
            final=True,
            meaning="The recipient opted out (link, STOP reply or otherwise) after this campaign; "
            "counted apart from the delivery status.",
            address_book="removed",
            address_book_why="The number joins the blacklist: a removal (unsubscribed) is published. "
            "A resubscribe lifts it.",
            smsmode="Recipient(s) blacklisted",
            emarsys="Unsubscribed",
            is_status=False,
        )
    )
    return tuple(out)


GLOSSARY: tuple[GlossaryEntry, ...] = _entries()
BY_STATUS: dict[str, GlossaryEntry] = {e.status: e for e in GLOSSARY}


def glossary() -> tuple[GlossaryEntry, ...]:
    """The status glossary, in display order (pass it to ``campaign.html`` as ``glossary``)."""
    return GLOSSARY


def status_label(status: str | None, wording: str | None = None) -> str:
    """A status's name: in smsmode's or Emarsys's wording, else in ours."""
    if status is None:
        return "\u2014"
    info = catalog.STATUSES.get(status)
    if info is None:
        return str(status)
    if wording == "smsmode":
        name = _smsmode_name(info.smsmode)
        if status == catalog.NOT_SENT:
            return "Not sent"
        return STATUS_LABELS.get(status, status) if name == "none" else name
    if wording == "emarsys":
        return info.emarsys
    return STATUS_LABELS.get(status, status)


def status_category(status: str | None) -> str:
    info = catalog.STATUSES.get(status or "")
    return info.category if info else "unknown"


def category_label(category: str | None) -> str:
    if category is None:
        return "\u2014"
    return CATEGORY_LABELS.get(category, str(category))


def statuses_of(category: str) -> tuple[str, ...]:
    return tuple(s for s in STATUS_ORDER if catalog.STATUSES[s].category == category)


def reason_label(reason: str | None) -> str:
    if reason is None:
        return "\u2014"
    return NOT_SENT_REASON_LABELS.get(reason, str(reason))


def removal_reason_label(reason: str | None) -> str:
    if reason is None:
        return "\u2014"
    return REMOVAL_REASON_LABELS.get(reason, str(reason))


def channel_label(channel: str | None) -> str:
    if channel is None:
        return "\u2014"
    return CHANNEL_LABELS.get(channel, str(channel))


def kind_label(kind: str | None) -> str:
    if kind is None:
        return "\u2014"
    return KIND_LABELS.get(kind, str(kind))
