"""The "smstally-avro" Faust codec: topics declare it by name as value_serializer.

Thin on purpose: framing, schemas and error reporting live in schemas.codec so
that the simulator and tests, which do not run Faust, encode the same bytes.

A value to send is tagged with its record name, either as a
`(full_name, record)` tuple or as a dict carrying `"__record__": full_name`
(fastavro ignores keys that are not fields, so no copy is made). Decoding
yields `(full_name, record)`. Faust codecs get no topic context, so a
Confluent value whose schema id cannot be resolved fails here; code that knows
the topic's record type should call `AvroCodec.decode(data, expected)`.
"""

from __future__ import annotations

from typing import Any

from faust.serializers import codecs

from schemas.codec import AvroCodec

CODEC_NAME = "smstally-avro"
RECORD_TAG = "__record__"


class SmstallyAvro(codecs.Codec):
    def __init__(self, children: Any = None, *, registry_url: str | None = None, **kwargs: Any):
        if registry_url:
            kwargs["registry_url"] = registry_url  # kept so Codec.clone() rebuilds the same codec
        super().__init__(children=children, **kwargs)
        self.avro = AvroCodec(registry_url)

    def _dumps(self, obj: Any) -> bytes:
        if isinstance(obj, tuple) and len(obj) == 2:
            return self.avro.encode(obj[0], obj[1])
        if isinstance(obj, dict) and RECORD_TAG in obj:
            return self.avro.encode(obj[RECORD_TAG], obj)
        raise TypeError(
            f"{CODEC_NAME} encodes (record_name, dict) tuples or dicts with a {RECORD_TAG!r} key, "
            f"not {type(obj).__name__}"
        )

    def _loads(self, s: bytes) -> tuple[str, dict]:
        return self.avro.decode(s)


def install(registry_url: str | None = None) -> SmstallyAvro:
    """(Re-)register the codec, e.g. once the app's registry URL is known."""
    codec = SmstallyAvro(registry_url=registry_url)
    codecs.register(CODEC_NAME, codec)
    return codec


install()
