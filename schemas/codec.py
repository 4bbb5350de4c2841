"""Avro values for smstally topics, framed so any consumer can decode them alone.

Two framings exist (CONTRACT.md section 2): Avro single-object encoding when no
schema registry is configured, the Confluent wire format when one is. A reader
must accept both whatever it is configured with, because topics outlive
configuration changes and upstream producers choose their own framing.

Everything per-schema (parsing, fingerprints, headers) is done once at import
of the schemas: this code runs for every event, at ~100k events/s.

`timestamp-millis` is stripped from the schemas used to read and write so that
timestamps stay plain int milliseconds end to end (the folding rules compare
and subtract them; datetimes would cost time and lose nothing but type
safety). The parsing canonical form ignores logical types, so the fingerprint
is the one any other Avro implementation computes from the .avsc file.
"""

from __future__ import annotations

import io
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

from fastavro import parse_schema, schemaless_reader, schemaless_writer

try:  # private module, only used to classify failures; the codec works without it
    from fastavro._read_py import schemaless_reader as _slow_reader
except ImportError:  # pragma: no cover
    _slow_reader = None  # type: ignore[assignment]
from fastavro.schema import fingerprint as _fa_fingerprint
from fastavro.schema import to_parsing_canonical_form

NAMESPACE = "smstally"
RECORD_NAMES: tuple[str, ...] = tuple(
    f"{NAMESPACE}.{n}"
    for n in (
        "CampaignLaunched",
        "MessageSent",
        "DeliveryReceipt",
        "Unsubscribe",
        "CampaignStats",
        "MessageStatus",
        "AddressBookRemoval",
        "DeadLetter",
        "Suppression",
    )
)
SINGLE_OBJECT_MAGIC = b"\xc3\x01"
CONFLUENT_MAGIC = b"\x00"
DECODE_ERROR_KINDS = (
    "undecodable",
    "unknown_fingerprint",
    "unknown_schema_id",
    "wrong_record_type",
    "truncated",
    "empty",
)
_SCHEMA_DIR = Path(__file__).resolve().parent


class DecodeError(ValueError):
    """A value that cannot become a record: callers dead-letter it, never retry.

    `kind` is stable and machine-readable (it becomes DeadLetter.error_kind);
    `reason` is for the person who has to fix the producer.
    """

    def __init__(self, kind: str, reason: str):
        super().__init__(kind, reason)
        self.kind = kind
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.kind}: {self.reason}"


class EncodeError(ValueError):
    """A record that does not fit its schema: a bug in our own code, not bad input."""


def _full_name(schema: dict[str, Any]) -> str:
    name: str = schema["name"]
    if "." in name:
        return name
    ns = schema.get("namespace")
    return f"{ns}.{name}" if ns else name


def strip_logical_types(schema: Any) -> Any:
    """Copy of `schema` without logicalType, so fastavro reads/writes raw ints."""
    if isinstance(schema, dict):
        return {k: strip_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [strip_logical_types(v) for v in schema]
    return schema


def compile_schema(schema: Any) -> dict[str, Any]:
    """fastavro-parsed, logical-type-free form; a fresh name table per schema
    because each .avsc stands alone (CampaignStats re-declares CampaignKind)."""
    return cast(dict[str, Any], parse_schema(strip_logical_types(schema), named_schemas={}))


def canonical_form(schema: Any) -> str:
    return to_parsing_canonical_form(parse_schema(schema, named_schemas={}))


def crc64_fingerprint(schema: Any) -> bytes:
    """CRC-64-AVRO of the parsing canonical form, little-endian as Java writes it."""
    return bytes.fromhex(_fa_fingerprint(canonical_form(schema), "CRC-64-AVRO"))


@lru_cache(maxsize=1)
def load_schemas() -> dict[str, dict[str, Any]]:
    schemas: dict[str, dict[str, Any]] = {}
    for path in sorted(_SCHEMA_DIR.glob("*.avsc")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        name = _full_name(schema)
        if name.rpartition(".")[2] != path.stem:
            raise ValueError(f"{path.name} declares {name}: one record per file, named like the file")
        schemas[name] = schema
    missing = [n for n in RECORD_NAMES if n not in schemas]
    if missing:
        raise FileNotFoundError(f"schemas missing from {_SCHEMA_DIR}: {', '.join(missing)}")
    return schemas


class _Compiled:
    """Per-schema work done once for the whole process."""

    def __init__(self) -> None:
        self.raw = load_schemas()
        self.parsed = {n: compile_schema(s) for n, s in self.raw.items()}
        self.canonical = {n: canonical_form(s) for n, s in self.raw.items()}
        self.fingerprints = {n: crc64_fingerprint(s) for n, s in self.raw.items()}
        self.headers = {n: SINGLE_OBJECT_MAGIC + fp for n, fp in self.fingerprints.items()}
        self.by_fingerprint = {fp: (n, self.parsed[n]) for n, fp in self.fingerprints.items()}
        self.by_canonical = {c: n for n, c in self.canonical.items()}
        self.aliases = {n: n for n in self.raw}
        self.aliases.update({n.rpartition(".")[2]: n for n in self.raw})

    def name(self, name: str) -> str:
        try:
            return self.aliases[name]
        except (KeyError, TypeError):
            raise ValueError(f"unknown record {name!r}; known: {', '.join(self.raw)}") from None


@lru_cache(maxsize=1)
def _compiled() -> _Compiled:
    return _Compiled()


def fingerprint(full_name: str) -> bytes:
    c = _compiled()
    return c.fingerprints[c.name(full_name)]


def _hex(data: bytes) -> str:
    return " ".join(f"{b:02X}" for b in data)


def _body_error(
    data: bytes,
    start: int,
    writer: dict[str, Any],
    reader: dict[str, Any] | None,
    name: str,
    where: str,
    exc: Exception,
) -> DecodeError:
    """Turn a fastavro failure into a reason a person can act on.

    The C reader reports a short body as IndexError/OverflowError/EOFError
    depending on where it stops; the pure-Python reader always says EOFError,
    so re-reading with it (only on this failure path) tells truncation apart
    from garbage.
    """
    try:
        if _slow_reader is None:
            raise exc
        bio = io.BytesIO(data)
        bio.seek(start)
        _slow_reader(bio, writer, reader)
    except EOFError:
        return DecodeError(
            "truncated",
            f"{where}: the {len(data) - start}-byte body ends before a complete {name} "
            f"record (cut short, or not a {name})",
        )
    except Exception as slow_exc:  # noqa: BLE001 - any reader failure is a bad value
        exc = slow_exc
    return DecodeError("undecodable", f"{where}: the body is not a valid {name} record ({type(exc).__name__}: {exc})")


def _read_body(
    data: bytes, start: int, writer: dict[str, Any], reader: dict[str, Any] | None, name: str, where: str
) -> dict[str, Any]:
    bio = io.BytesIO(data)
    bio.seek(start)
    try:
        record = schemaless_reader(bio, writer, reader)
    except Exception as exc:  # noqa: BLE001 - never let a fastavro exception escape
        raise _body_error(data, start, writer, reader, name, where, exc) from None
    extra = len(data) - bio.tell()
    if extra:
        raise DecodeError(
            "undecodable",
            f"{where}: {extra} byte{'s' if extra > 1 else ''} left after a complete {name} record "
            "(wrong schema, or several values concatenated)",
        )
    return cast(dict[str, Any], record)


class AvroCodec:
    """Encode/decode smstally records; one instance per process is enough.

    With `registry_url`, encoding uses the Confluent wire format. Decoding a
    Confluent frame asks the registry for unknown ids. If the registry cannot
    be reached, `schemas.registry.RegistryError` propagates instead of a
    DecodeError: the value is probably fine and must be retried, not
    dead-lettered.
    """

    def __init__(self, registry_url: str | None = None):
        self._c = _compiled()
        self._registry = None
        if registry_url:
            from schemas.registry import SchemaRegistryClient

            self._registry = SchemaRegistryClient(registry_url)
        self._confluent_headers: dict[tuple[str, str], bytes] = {}
        # schema id -> (full name, writer schema, reader schema or None)
        self._by_id: dict[int, tuple[str, dict[str, Any], dict[str, Any] | None] | None] = {}

    # -- encoding ---------------------------------------------------------

    def encode(self, full_name: str, record: dict[str, Any], *, subject: str | None = None) -> bytes:
        c = self._c
        name = full_name if full_name in c.parsed else c.name(full_name)
        if self._registry is None:
            header = c.headers[name]
        else:
            header = self._confluent_headers.get((name, subject or name)) or self._register(name, subject or name)
        out = io.BytesIO()
        out.write(header)
        try:
            schemaless_writer(out, c.parsed[name], record)
        except Exception as exc:  # noqa: BLE001 - re-raised with the record's name
            raise EncodeError(f"cannot encode {name}: {type(exc).__name__}: {exc}") from exc
        return out.getvalue()

    def _register(self, name: str, subject: str) -> bytes:
        assert self._registry is not None  # encode() registers only with a registry configured
        schema_id = self._registry.register(subject, self._c.raw[name])
        header = CONFLUENT_MAGIC + schema_id.to_bytes(4, "big")
        self._confluent_headers[(name, subject)] = header
        self._by_id.setdefault(schema_id, (name, self._c.parsed[name], None))
        return header

    # -- decoding ---------------------------------------------------------

    def decode(self, data: bytes, expected: str | None = None) -> tuple[str, dict[str, Any]]:
        c = self._c
        if expected is not None and expected not in c.parsed:
            expected = c.name(expected)
        if not data:
            what = "null (a tombstone?)" if data is None else "empty"
            raise DecodeError("empty", f"value is {what}: there is no record to decode")
        if type(data) is not bytes:
            if not isinstance(data, (bytearray, memoryview)):
                raise DecodeError("undecodable", f"value is a {type(data).__name__}, not bytes")
            data = bytes(data)
        if data[:2] == SINGLE_OBJECT_MAGIC or data == SINGLE_OBJECT_MAGIC[:1]:
            return self._decode_single_object(data, expected)
        if data[0] == 0:
            return self._decode_confluent(data, expected)
        hint = " (looks like JSON)" if data[:1] in (b"{", b"[") else ""
        raise DecodeError(
            "undecodable",
            f"value starts with {_hex(data[:2])}{hint}: neither Avro single-object encoding "
            "(C3 01) nor Confluent wire format (00)",
        )

    def _decode_single_object(self, data: bytes, expected: str | None) -> tuple[str, dict[str, Any]]:
        if len(data) < 10:
            raise DecodeError(
                "truncated",
                f"value is {len(data)} bytes: too short for Avro single-object encoding "
                "(needs header C3 01 + 8-byte fingerprint)",
            )
        entry = self._c.by_fingerprint.get(data[2:10])
        if entry is None:
            raise DecodeError(
                "unknown_fingerprint",
                f"schema fingerprint {data[2:10].hex()} is not one of this build's schemas "
                "(a record written with another schema version, or not an smstally record)",
            )
        name, parsed = entry
        if expected is not None and name != expected:
            raise DecodeError("wrong_record_type", f"value is a {name}, expected {expected}")
        return name, _read_body(data, 10, parsed, None, name, "single-object value")

    def _decode_confluent(self, data: bytes, expected: str | None) -> tuple[str, dict[str, Any]]:
        if len(data) < 5:
            raise DecodeError(
                "truncated",
                f"value is {len(data)} bytes: too short for the Confluent wire format (needs 00 + 4-byte schema id)",
            )
        schema_id = int.from_bytes(data[1:5], "big")
        where = f"Confluent value with schema id {schema_id}"
        entry = self._by_id.get(schema_id) if schema_id in self._by_id else self._lookup_id(schema_id)
        if entry is not None:
            name, writer, reader = entry
            if expected is not None and name != expected:
                raise DecodeError("wrong_record_type", f"schema id {schema_id} is {name}, expected {expected}")
            return name, _read_body(data, 5, writer, reader, name, where)
        if expected is None:
            why = "no schema registry is configured" if self._registry is None else "the registry does not know it"
            raise DecodeError(
                "unknown_schema_id",
                f"{where}: {why}, and the topic's record type was not given",
            )
        return expected, _read_body(
            data, 5, self._c.parsed[expected], None, expected, f"{where} (unresolved, read as {expected})"
        )

    def _lookup_id(self, schema_id: int) -> tuple[str, dict[str, Any], dict[str, Any] | None] | None:
        if self._registry is None:
            return None
        from schemas.registry import InvalidSchema, SchemaNotFound

        try:
            schema = self._registry.get_schema(schema_id)
        except SchemaNotFound:
            self._by_id[schema_id] = None
            return None
        except InvalidSchema as exc:
            raise DecodeError("undecodable", f"schema id {schema_id}: {exc}") from None
        try:
            name = _full_name(schema)
            writer = compile_schema(schema)
            canonical = canonical_form(schema)
        except Exception as exc:  # noqa: BLE001 - a registry schema we cannot use
            raise DecodeError(
                "undecodable", f"schema id {schema_id} is not a usable Avro record schema ({exc})"
            ) from None
        c = self._c
        if name not in c.parsed:
            raise DecodeError("wrong_record_type", f"schema id {schema_id} is {name}, not an smstally record")
        entry: tuple[str, dict[str, Any], dict[str, Any] | None]
        if c.by_canonical.get(canonical) == name:
            entry = (name, c.parsed[name], None)
        else:  # another version of our record: Avro schema resolution to the current one
            entry = (name, writer, c.parsed[name])
        self._by_id[schema_id] = entry
        return entry
