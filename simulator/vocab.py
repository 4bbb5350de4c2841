"""What the simulated providers say: raw receipt words and error codes (contract §4).

This is the *generator's* view of the provider vocabularies: for each provider, which raw
strings to write for each outcome. It is deliberately separate from the processor's
status map (processors/status_map.json): the simulator must not borrow the code it tests.

Choices worth knowing:

* smsmode has no raw vocabulary of its own in the contract's table, yet its permanent codes
  (3520-3529) are listed, so its receipts must use failure words from the table. The
  simulator only writes, for smsmode and for receipts without a provider, words that mean
  the same thing in every vocabulary that lists them ("DELIVERED"/"delivered",
  "FAILED"/"failed", "EXPIRED", "PENDING", "accepted"), so the expected status does not
  depend on how an implementation falls back for a provider it has no vocabulary for.
* Case varies on purpose ("delivrd", "Delivered"): vocabularies match case-insensitively.
  Canonical names sent by a normalizing upstream ("PROVIDER_ACCEPTED") are always upper
  case.
* "Soft" codes include codes that are permanent for *another* provider (twilio "1",
  vonage "30005", smsmode "9"): permanence depends on the receipt's provider. Non-numeric
  codes ("0x0B", "ERR_TIMEOUT", "") and a missing code also mean SOFT_BOUNCE.
"""

from __future__ import annotations

PROVIDERS = ("smpp", "twilio", "vonage", "infobip", "smsmode")
PROVIDER_WEIGHTS = (35, 20, 15, 15, 15)

# Canonical statuses (contract §4) and the tie precedence of rule 3 (higher wins).
PENDING = "PENDING"
PROVIDER_ACCEPTED = "PROVIDER_ACCEPTED"
DELIVERED = "DELIVERED"
SOFT_BOUNCE = "SOFT_BOUNCE"
PROVIDER_ERROR = "PROVIDER_ERROR"
HARD_BOUNCE = "HARD_BOUNCE"
UNKNOWN = "UNKNOWN"
NOT_SENT = "NOT_SENT"
STATUSES = (PENDING, PROVIDER_ACCEPTED, DELIVERED, SOFT_BOUNCE, PROVIDER_ERROR, HARD_BOUNCE, UNKNOWN, NOT_SENT)
PRECEDENCE = {HARD_BOUNCE: 6, DELIVERED: 5, SOFT_BOUNCE: 4, UNKNOWN: 3, PROVIDER_ACCEPTED: 2, PROVIDER_ERROR: 1}

_GSM_HARD = ("1", "001", "9", "009", "11", "12", "012")
_GSM_SOFT = ("0", "2", "5", "13", "27", "069", "3", "30005", "3520")
_NON_NUMERIC = ("ERR_TIMEOUT", "0x0B", "", "E-11")

# Strings no vocabulary knows (and that are no canonical name): they mean UNKNOWN.
UNRECOGNIZED = ("NOSTATUS", "status_7", "DLR?", "ERR_UNMAPPED")

_GENERIC = {
    "pending": ("PENDING", "accepted", "Pending"),
    "delivered": ("DELIVERED", "delivered", "Delivered"),
    "expired": ("EXPIRED", "expired"),
    "failure": ("FAILED", "failed"),
    "unknown": ("UNKNOWN",) + UNRECOGNIZED,
    "hard_codes": _GSM_HARD,
    "soft_codes": _GSM_SOFT,
}

VOCAB: dict[str | None, dict[str, tuple[str, ...]]] = {
    "smpp": {
        "pending": ("ENROUTE", "ACCEPTD", "SCHEDULED", "BUFFRED", "enroute"),
        "delivered": ("DELIVRD", "DELIVRD", "delivrd", "Delivrd"),
        "expired": ("EXPIRED", "expired"),
        "failure": ("UNDELIV", "REJECTD", "DELETED", "FAILED", "undeliv"),
        "unknown": ("UNKNOWN", "unknown") + UNRECOGNIZED,
        "hard_codes": _GSM_HARD,
        "soft_codes": _GSM_SOFT,
    },
    "twilio": {
        "pending": ("queued", "accepted", "scheduled", "sending", "sent", "Sent"),
        "delivered": ("delivered", "delivered", "read", "Delivered"),
        "expired": (),  # twilio has no "expired": a soft bounce is a failure with a soft code
        "failure": ("undelivered", "failed", "Undelivered"),
        "unknown": UNRECOGNIZED,
        "hard_codes": ("30005", "30006"),
        "soft_codes": ("30003", "30007", "30008", "30004", "1", "11"),
    },
    "vonage": {
        "pending": ("accepted", "buffered", "Buffered"),
        "delivered": ("delivered", "DELIVERED"),
        "expired": ("expired",),
        "failure": ("failed", "rejected", "Failed"),
        "unknown": ("unknown", "Unknown") + UNRECOGNIZED,
        "hard_codes": ("3", "4", "03"),
        "soft_codes": ("1", "2", "5", "6", "7", "99", "30005"),
    },
    "infobip": {
        "pending": ("PENDING", "pending"),
        "delivered": ("DELIVERED", "delivered"),
        "expired": ("EXPIRED",),
        "failure": ("UNDELIVERABLE", "REJECTED", "undeliverable"),
        "unknown": UNRECOGNIZED,
        "hard_codes": _GSM_HARD,  # infobip is not in the codes table: GSM MAP codes apply
        "soft_codes": _GSM_SOFT,
    },
    "smsmode": dict(
        _GENERIC,
        hard_codes=tuple(str(c) for c in range(3520, 3530)),
        soft_codes=("3500", "3519", "3530", "1", "9", "30005"),
    ),
    None: _GENERIC,  # receipt without a provider: GSM MAP codes
}
for _v in VOCAB.values():
    _v["soft_codes"] = tuple(_v["soft_codes"]) + _NON_NUMERIC
del _v

NOT_SENT_REASONS = ("OPTED_OUT", "INVALID_NUMBER", "INSUFFICIENT_CREDIT", "DUPLICATE", "HARD_BOUNCE", "OTHER", None)
NOT_SENT_REASON_WEIGHTS = (30, 20, 10, 15, 10, 5, 10)

STOP_TEXTS = ("STOP", "stop", "Stop svp", "STOP", "stop ")
UNPARSEABLE_PHONES = ("not-a-number", "N/A", "unknown")

# Mobile ranges that phonenumbers (region data) accepts as valid mobiles.
FR_MOBILE_PREFIXES = ("60", "61", "62", "64", "65", "66", "67", "68", "73", "74", "75", "76", "77", "78", "79")
BE_MOBILE_PREFIXES = ("45", "46", "47", "48", "49")
ES_MOBILE_PREFIXES = ("60", "61", "62", "63", "64", "65", "66", "67", "68", "69", "71", "72", "73", "74")
OPERATORS = {
    "FR": ("Orange", "SFR", "Bouygues Telecom", "Free Mobile"),
    "BE": ("Proximus", "Orange Belgium", "Telenet"),
    "ES": ("Movistar", "Vodafone", "Orange", "Yoigo"),
}
