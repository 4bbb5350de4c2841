"""The codec is the contract's section 2: other implementations must read our
bytes and we must read theirs, so these tests check against Apache avro and
an independent CRC-64-AVRO, not only against ourselves."""

from __future__ import annotations

import datetime as dt
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

import avro.io
import avro.schema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.codec import (
    RECORD_NAMES,
    AvroCodec,
    DecodeError,
    EncodeError,
    fingerprint,
    load_schemas,
    strip_logical_types,
)
from schemas.registry import RegistryError, SchemaNotFound, SchemaRegistryClient

SCHEMAS = load_schemas()
PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}

# -- values generated from a schema -------------------------------------------


def strategy(schema, named=None, ns=""):
    named = {} if named is None else named
    if isinstance(schema, list):
        return st.one_of([strategy(b, named, ns) for b in schema])
    if isinstance(schema, str):
        if schema in PRIMITIVES:
            schema = {"type": schema}
        else:
            return named[schema if "." in schema else f"{ns}.{schema}"]
    t = schema["type"]
    if isinstance(t, (dict, list)):
        return strategy(t, named, ns)
    if t in ("record", "enum", "fixed"):
        full = schema["name"] if "." in schema["name"] else f"{schema.get('namespace', ns)}.{schema['name']}"
        inner = full.rpartition(".")[0]
        if t == "enum":
            s = st.sampled_from(schema["symbols"])
        elif t == "fixed":
            s = st.binary(min_size=schema["size"], max_size=schema["size"])
        else:
            s = st.fixed_dictionaries({f["name"]: strategy(f["type"], named, inner) for f in schema["fields"]})
        named[full] = s
        return s
    return {
        "null": lambda: st.none(),
        "boolean": lambda: st.booleans(),
        "int": lambda: st.integers(-(2**31), 2**31 - 1),
        "long": lambda: st.integers(-(2**63), 2**63 - 1),
        "float": lambda: st.floats(width=32, allow_nan=False),
        "double": lambda: st.floats(allow_nan=False),
        "bytes": lambda: st.binary(),
        "string": lambda: st.text(),
        "array": lambda: st.lists(strategy(schema["items"], named, ns), max_size=5),
        "map": lambda: st.dictionaries(st.text(), strategy(schema["values"], named, ns), max_size=5),
    }[t]()


RECORDS = {name: strategy(SCHEMAS[name]) for name in RECORD_NAMES}


def apache_read(name, body):
    """Decode an Avro body with the Apache implementation (logical types off,
    as our codec reads them: int milliseconds, any int64)."""
    schema = avro.schema.parse(json.dumps(strip_logical_types(SCHEMAS[name])))
    buf = io.BytesIO(body)
    datum = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(buf))
    assert buf.tell() == len(body), "Apache avro did not consume the whole body"
    return datum


def apache_write(name, record, schema=None):
    schema = avro.schema.parse(json.dumps(strip_logical_types(schema or SCHEMAS[name])))
    buf = io.BytesIO()
    avro.io.DatumWriter(schema).write(record, avro.io.BinaryEncoder(buf))
    return buf.getvalue()


# -- independent parsing canonical form and CRC-64-AVRO (spec algorithms) ---------

_EMPTY64 = 0xC15D213AA4D7A795
_TABLE = []
for _i in range(256):
    _fp = _i
    for _ in range(8):
        _fp = (_fp >> 1) ^ (_EMPTY64 & -(_fp & 1))
    _TABLE.append(_fp)


def crc64_avro(data: bytes) -> bytes:
    fp = _EMPTY64
    for byte in data:
        fp = (fp >> 8) ^ _TABLE[(fp ^ byte) & 0xFF]
    return fp.to_bytes(8, "little")


def pcf(schema, ns="", seen=None):
    seen = set() if seen is None else seen
    q = lambda v: json.dumps(v, ensure_ascii=False)  # noqa: E731
    if isinstance(schema, str):
        return q(schema) if schema in PRIMITIVES or "." in schema else q(f"{ns}.{schema}" if ns else schema)
    if isinstance(schema, list):
        return "[" + ",".join(pcf(b, ns, seen) for b in schema) + "]"
    t = schema["type"]
    if not isinstance(t, str) or t in PRIMITIVES:
        return pcf(t, ns, seen)
    if t in ("array", "map"):
        key = "items" if t == "array" else "values"
        return f'{{"type":"{t}","{key}":{pcf(schema[key], ns, seen)}}}'
    name = schema["name"]
    full = name if "." in name else (f"{schema.get('namespace', ns)}.{name}" if schema.get("namespace", ns) else name)
    if full in seen:
        return q(full)
    seen.add(full)
    inner = full.rpartition(".")[0]
    head = f'{{"name":{q(full)},"type":"{t}"'
    if t == "record":
        fields = ",".join(f'{{"name":{q(f["name"])},"type":{pcf(f["type"], inner, seen)}}}' for f in schema["fields"])
        return head + f',"fields":[{fields}]}}'
    if t == "enum":
        return head + ',"symbols":[' + ",".join(q(s) for s in schema["symbols"]) + "]}"
    return head + f',"size":{schema["size"]}}}'


# -- fake Confluent registry ------------------------------------------------------


class FakeRegistry:
    def __init__(self):
        self.schemas: dict[int, str] = {}
        self.posts = 0
        self.gets = 0
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                parts = self.path.split("/")
                if len(parts) != 4 or parts[1] != "subjects" or parts[3] != "versions":
                    return self._answer(404, {"error_code": 404, "message": "HTTP 404 Not Found"})
                registry.posts += 1
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                text = json.dumps(json.loads(body["schema"]), sort_keys=True)
                for sid, known in registry.schemas.items():
                    if json.dumps(json.loads(known), sort_keys=True) == text:
                        return self._answer(200, {"id": sid})
                sid = max(registry.schemas, default=0) + 1
                registry.schemas[sid] = body["schema"]
                registry.subjects.append(unquote(parts[2]))
                return self._answer(200, {"id": sid})

            def do_GET(self):
                registry.gets += 1
                prefix = "/schemas/ids/"
                if self.path.startswith(prefix) and int(self.path[len(prefix) :]) in registry.schemas:
                    return self._answer(200, {"schema": registry.schemas[int(self.path[len(prefix) :])]})
                return self._answer(404, {"error_code": 40403, "message": "Schema not found"})

        self.subjects: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def registry():
    fake = FakeRegistry()
    yield fake
    fake.close()


def message_sent(**overrides):
    rec = {
        "event_id": "ev-1",
        "campaign_id": "c-1",
        "message_id": "m-1",
        "contact_id": None,
        "phone": "+33612345678",
        "sent_at": 1_700_000_000_123,
        "outcome": "SUBMITTED",
        "not_sent_reason": None,
        "segments": 2,
        "credits": 0.075,
        "provider": "smpp",
        "country": "FR",
        "operator": None,
    }
    rec.update(overrides)
    return rec


# -- round trips ------------------------------------------------------------------------

CODEC = AvroCodec()


@pytest.mark.parametrize("name", RECORD_NAMES)
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_record_round_trips_and_apache_avro_reads_it(name, data):
    record = data.draw(RECORDS[name])
    value = CODEC.encode(name, record)
    assert value[:2] == b"\xc3\x01"
    assert value[2:10] == fingerprint(name)
    assert CODEC.decode(value) == (name, record)
    assert CODEC.decode(value, expected=name) == (name, record)
    assert apache_read(name, value[10:]) == record
    # and the other direction: Apache's bytes are ours
    assert CODEC.decode(value[:10] + apache_write(name, record)) == (name, record)


def test_all_nine_contract_records_are_loaded():
    """Eight records of §1 and §11's Suppression."""
    assert set(RECORD_NAMES) <= set(SCHEMAS)
    assert len(RECORD_NAMES) == 9
    for name in RECORD_NAMES:
        assert SCHEMAS[name]["namespace"] == "smstally"


@pytest.mark.parametrize("name", RECORD_NAMES)
def test_fingerprint_is_crc64_avro_of_parsing_canonical_form(name):
    schema = SCHEMAS[name]
    assert fingerprint(name) == crc64_avro(pcf(schema).encode())
    # logicalType is not part of the canonical form: stripping it changes nothing
    assert pcf(schema) == pcf(strip_logical_types(schema))
    # Apache avro agrees on the logical-type-free schema. (Apache avro 1.12's
    # Python canonical_form renders a logical-typed long as {"type":"long"}
    # instead of "long", against the spec's [PRIMITIVES] rule, so its
    # fingerprint of the raw .avsc differs when timestamps are present.)
    apache = avro.schema.parse(json.dumps(strip_logical_types(schema)))
    assert apache.canonical_form == pcf(schema)
    assert apache.fingerprint("CRC-64-AVRO") == fingerprint(name)


def test_timestamps_stay_int_milliseconds():
    value = CODEC.encode("smstally.MessageSent", message_sent())
    _, rec = CODEC.decode(value)
    assert rec["sent_at"] == 1_700_000_000_123 and type(rec["sent_at"]) is int
    # the same bytes read by Apache avro with the logical type are that instant, UTC
    schema = avro.schema.parse(json.dumps(SCHEMAS["smstally.MessageSent"]))
    datum = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(io.BytesIO(value[10:])))
    assert datum["sent_at"] == dt.datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=dt.UTC)
    with pytest.raises(EncodeError):
        CODEC.encode("smstally.MessageSent", message_sent(sent_at=dt.datetime.now(dt.UTC)))


def test_missing_fields_with_defaults_are_filled_and_short_names_work():
    rec = {k: v for k, v in message_sent().items() if k not in ("segments", "credits", "provider")}
    name, out = CODEC.decode(CODEC.encode("MessageSent", rec), expected="MessageSent")
    assert name == "smstally.MessageSent"
    assert (out["segments"], out["credits"], out["provider"]) == (1, 0.0, None)


def test_encode_errors_name_the_record():
    with pytest.raises(EncodeError, match="MessageSent"):
        CODEC.encode("smstally.MessageSent", message_sent(phone=None))
    with pytest.raises(EncodeError):
        CODEC.encode("smstally.MessageSent", message_sent(outcome="LOST"))
    with pytest.raises(EncodeError):
        CODEC.encode("smstally.MessageSent", message_sent(sent_at=2**63))
    with pytest.raises(ValueError, match="unknown record"):
        CODEC.encode("smstally.Nope", {})


# -- Confluent framing ------------------------------------------------------------------


def test_confluent_with_registry(registry):
    producer = AvroCodec(registry.url)
    value = producer.encode("smstally.MessageSent", message_sent())
    assert value[0] == 0
    schema_id = int.from_bytes(value[1:5], "big")
    assert registry.schemas[schema_id] and registry.subjects == ["smstally.MessageSent"]
    producer.encode("smstally.MessageSent", message_sent())
    assert registry.posts == 1, "the id must be cached"
    assert producer.decode(value) == ("smstally.MessageSent", message_sent())
    assert registry.gets == 0, "an id we registered ourselves needs no lookup"

    consumer = AvroCodec(registry.url)
    assert consumer.decode(value) == ("smstally.MessageSent", message_sent())
    assert consumer.decode(value, "smstally.MessageSent")[1] == message_sent()
    assert registry.gets == 1
    with pytest.raises(DecodeError) as err:
        consumer.decode(value, expected="smstally.DeliveryReceipt")
    assert err.value.kind == "wrong_record_type"
    assert registry.gets == 1

    other = producer.encode(
        "smstally.Unsubscribe",
        {
            "event_id": "u",
            "phone": "+33600000000",
            "action": "UNSUBSCRIBE",
            "channel": "LINK",
            "at": 5,
        },
        subject="sms.unsubscribes-value",
    )
    assert registry.subjects[-1] == "sms.unsubscribes-value"
    assert consumer.decode(other)[0] == "smstally.Unsubscribe"


def test_confluent_without_registry_needs_expected():
    body = CODEC.encode("smstally.MessageSent", message_sent())[10:]
    value = b"\x00" + (42).to_bytes(4, "big") + body
    assert CODEC.decode(value, expected="smstally.MessageSent") == ("smstally.MessageSent", message_sent())
    with pytest.raises(DecodeError) as err:
        CODEC.decode(value)
    assert err.value.kind == "unknown_schema_id"
    # the expected schema must consume the body exactly
    with pytest.raises(DecodeError) as err:
        CODEC.decode(value, expected="smstally.CampaignLaunched")
    assert err.value.kind in ("undecodable", "truncated")


def test_confluent_unknown_id_in_registry(registry):
    codec = AvroCodec(registry.url)
    body = CODEC.encode("smstally.MessageSent", message_sent())[10:]
    value = b"\x00" + (777).to_bytes(4, "big") + body
    with pytest.raises(DecodeError) as err:
        codec.decode(value)
    assert err.value.kind == "unknown_schema_id"
    assert codec.decode(value, "smstally.MessageSent") == ("smstally.MessageSent", message_sent())
    assert registry.gets == 1, "a missing id is not asked for again"


def test_confluent_older_writer_schema_is_resolved(registry):
    """A producer still on an older MessageSent (no operator, no country, and
    a newer enum symbol) is read with the current schema's defaults."""
    old = json.loads(json.dumps(SCHEMAS["smstally.MessageSent"]))
    old["fields"] = [f for f in old["fields"] if f["name"] not in ("operator", "country")]
    outcome = next(f for f in old["fields"] if f["name"] == "outcome")
    outcome["type"]["symbols"].append("QUEUED")
    registry.schemas[7] = json.dumps(old)
    rec = {k: v for k, v in message_sent(outcome="QUEUED").items() if k not in ("operator", "country")}
    value = b"\x00" + (7).to_bytes(4, "big") + apache_write("smstally.MessageSent", rec, old)
    name, out = AvroCodec(registry.url).decode(value)
    assert name == "smstally.MessageSent"
    assert out == message_sent(outcome="UNKNOWN", country=None, operator=None)


def test_confluent_foreign_record(registry):
    registry.schemas[3] = json.dumps({"type": "record", "name": "Other", "namespace": "x", "fields": []})
    with pytest.raises(DecodeError) as err:
        AvroCodec(registry.url).decode(b"\x00\x00\x00\x00\x03")
    assert err.value.kind == "wrong_record_type"


def test_unreachable_registry_is_not_a_decode_error():
    """A registry outage must not dead-letter good values: it surfaces as
    RegistryError so the caller retries."""
    fake = FakeRegistry()
    url = fake.url
    fake.close()
    codec = AvroCodec(url)
    codec._registry.timeout = 2
    with pytest.raises(RegistryError) as err:
        codec.decode(b"\x00\x00\x00\x00\x09" + b"\x00")
    assert not isinstance(err.value, DecodeError)


def test_registry_client_errors(registry):
    client = SchemaRegistryClient(registry.url + "/")
    sid = client.register("s", {"type": "string"})
    assert client.register("s", '{"type":"string"}') == sid and registry.posts == 1
    assert client.get_schema(sid) == {"type": "string"}
    with pytest.raises(SchemaNotFound, match="404"):
        client.get_schema(999)
    # a bare 404 (wrong base URL) is not "schema not found": data must not be dropped for it
    with pytest.raises(RegistryError) as err:
        SchemaRegistryClient(registry.url + "/wrong").register("s", {"type": "string"})
    assert not isinstance(err.value, SchemaNotFound) and "URL" in str(err.value)
    with pytest.raises(ValueError):
        SchemaRegistryClient("localhost:8081")


# -- bad input --------------------------------------------------------------------------


def kind_of(data, expected=None, codec=CODEC):
    with pytest.raises(DecodeError) as err:
        codec.decode(data, expected)
    assert err.value.reason and str(err.value).startswith(err.value.kind)
    return err.value.kind


def test_bad_inputs_have_the_right_kind():
    good = CODEC.encode("smstally.MessageSent", message_sent())
    assert kind_of(b"") == "empty"
    assert kind_of(None) == "empty"
    assert kind_of(b"\x13\x37 random bytes") == "undecodable"
    assert kind_of(b'{"event_id": "x"}') == "undecodable"
    assert kind_of(b"\xc3\x01\x00") == "truncated"
    assert kind_of(b"\x00\x00") == "truncated"
    assert kind_of(good + b"\x00") == "undecodable"
    assert kind_of(b"\xc3\x01" + bytes(8) + good[10:]) == "unknown_fingerprint"
    assert kind_of(good, "smstally.DeliveryReceipt") == "wrong_record_type"
    assert kind_of(b"\x00\x00\x00\x00\x01" + good[10:]) == "unknown_schema_id"
    assert kind_of("a string") == "undecodable"
    assert CODEC.decode(bytearray(good)) == CODEC.decode(memoryview(good))


def test_every_truncation_is_reported_as_truncated():
    good = CODEC.encode("smstally.MessageSent", message_sent())
    for cut in range(1, len(good)):
        assert kind_of(good[:cut]) == "truncated", cut


def test_invalid_body_values():
    good = CODEC.encode("smstally.MessageSent", message_sent())
    assert good[10:15] == b"\x08ev-1"
    assert kind_of(good[:11] + b"\xff\xfe\xfd\xfc" + good[15:]) == "undecodable"  # invalid UTF-8
    launched = CODEC.encode(
        "CampaignLaunched",
        {
            "event_id": "e",
            "campaign_id": "c",
            "name": "n",
            "kind": "BATCH",
            "text": "t",
            "sender_id": "s",
            "sms_type": "marketing",
            "created_at": 1,
            "launched_at": 2,
            "launch_list_size": 3,
        },
    )
    assert launched[10:17] == b"\x02e\x02c\x02n\x00"  # kind index 0 (BATCH)
    assert kind_of(launched[:16] + b"\x7e" + launched[17:]) == "undecodable"  # index 63
    assert kind_of(good[:10] + b"\x01" + good[11:]) in ("undecodable", "truncated")  # negative length


FRAMED = st.one_of(
    st.binary(max_size=200),
    st.builds(lambda n, b: b"\xc3\x01" + fingerprint(n) + b, st.sampled_from(RECORD_NAMES), st.binary(max_size=200)),
    st.builds(lambda b: b"\x00" + b, st.binary(max_size=200)),
)


@settings(max_examples=1500, deadline=None)
@given(data=FRAMED, expected=st.sampled_from((None, *RECORD_NAMES)))
def test_fuzz_only_decode_errors(data, expected):
    try:
        name, record = CODEC.decode(data, expected)
    except DecodeError as err:
        assert err.kind in (
            "undecodable",
            "unknown_fingerprint",
            "unknown_schema_id",
            "wrong_record_type",
            "truncated",
            "empty",
        )
    else:
        assert name in RECORD_NAMES and isinstance(record, dict)
        assert expected in (None, name)
