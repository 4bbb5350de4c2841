"""A minimal Confluent-compatible schema registry client.

Only the two calls the wire format needs: register a schema under a subject
(producer side) and fetch a schema by id (consumer side). Plain urllib keeps
the dependency list short; results are cached forever because ids are
immutable in a registry.

Errors are split by what the caller should do: SchemaNotFound and
InvalidSchema are answers about one value (dead-letter it); any other
RegistryError means the registry could not answer (retry, don't drop data).
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class RegistryError(RuntimeError):
    """The registry could not be asked or gave no usable answer."""

    def __init__(self, message: str, *, url: str = "", status: int | None = None):
        super().__init__(message)
        self.url = url
        self.status = status


class SchemaNotFound(RegistryError):
    """The registry answered: no such schema id or subject."""


class InvalidSchema(RegistryError):
    """The registry answered with something that is not an Avro schema."""


class SchemaRegistryClient:
    def __init__(self, url: str, *, timeout: float = 10.0):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"schema registry URL must be http(s)://host[:port][/path], got {url!r}")
        self._auth = None
        if parts.username is not None:  # urllib ignores user:pass@ in URLs
            creds = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
            self._auth = "Basic " + base64.b64encode(creds.encode()).decode()
            netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
            parts = parts._replace(netloc=netloc)
        self.url = urllib.parse.urlunsplit(parts).rstrip("/")
        self.timeout = timeout
        self._ids: dict[tuple[str, str], int] = {}
        self._schemas: dict[int, Any] = {}

    def register(self, subject: str, schema: dict[str, Any] | str) -> int:
        """Id of `schema` under `subject`; the registry returns the existing id
        when the schema is already registered, so calling this is idempotent."""
        text = schema if isinstance(schema, str) else json.dumps(schema, separators=(",", ":"))
        key = (subject, text)
        if key not in self._ids:
            path = f"/subjects/{urllib.parse.quote(subject, safe='')}/versions"
            answer = self._call("POST", path, {"schema": text})
            schema_id = answer.get("id") if isinstance(answer, dict) else None
            if not isinstance(schema_id, int) or isinstance(schema_id, bool):
                raise RegistryError(f"registry answered {answer!r} without an integer id", url=self.url + path)
            self._ids[key] = schema_id
            self._schemas.setdefault(schema_id, json.loads(text))
        return self._ids[key]

    def get_schema(self, schema_id: int) -> Any:
        """Parsed JSON of the schema with this id."""
        if schema_id not in self._schemas:
            path = f"/schemas/ids/{int(schema_id)}"
            answer = self._call("GET", path)
            if not isinstance(answer, dict) or not isinstance(answer.get("schema"), str):
                raise InvalidSchema(
                    f"registry answered {str(answer)[:200]!r} for schema id {schema_id}", url=self.url + path
                )
            kind = answer.get("schemaType", "AVRO")
            if kind != "AVRO":
                raise InvalidSchema(f"schema id {schema_id} is a {kind} schema, not Avro", url=self.url + path)
            try:
                self._schemas[schema_id] = json.loads(answer["schema"])
            except ValueError as exc:
                raise InvalidSchema(f"schema id {schema_id} is not valid JSON: {exc}", url=self.url + path) from None
        return self._schemas[schema_id]

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        url = self.url + path
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Accept", f"{_CONTENT_TYPE}, application/json")
        if data is not None:
            request.add_header("Content-Type", _CONTENT_TYPE)
        if self._auth:
            request.add_header("Authorization", self._auth)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            raise self._http_error(exc, method, url) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RegistryError(f"cannot reach schema registry at {self.url}: {reason}", url=url) from None
        try:
            return json.loads(payload)
        except ValueError:
            raise RegistryError(f"{method} {url}: answer is not JSON: {payload[:200]!r}", url=url) from None

    @staticmethod
    def _http_error(exc: urllib.error.HTTPError, method: str, url: str) -> RegistryError:
        try:
            detail = json.loads(exc.read() or b"{}")
        except ValueError:
            detail = {}
        if not isinstance(detail, dict):
            detail = {}
        message = detail.get("message")
        text = f"{method} {url}: HTTP {exc.code}" + (f": {message}" if message else "")
        if exc.code == 404:
            # Only the registry's own "not found" codes (40401 subject, 40402
            # version, 40403 schema) say something about the value; a bare 404
            # is more likely a wrong URL, which must not dead-letter good data.
            if detail.get("error_code") in (40401, 40402, 40403):
                return SchemaNotFound(text, url=url, status=exc.code)
            return RegistryError(text + " (is the registry URL right?)", url=url, status=exc.code)
        if exc.code in (409, 422):  # incompatible or invalid schema: a permanent refusal
            return InvalidSchema(text, url=url, status=exc.code)
        return RegistryError(text, url=url, status=exc.code)
