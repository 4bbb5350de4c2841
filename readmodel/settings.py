"""Settings of ``smstally api`` (contract §10), from the environment.

The broker, topic names, framing and data dir are the worker's own settings
(``streams.config``, a plain dataclass with no runtime behind it), so that an API process
configured like the workers reads the topics they write.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from streams.config import Settings, from_env

DEFAULT_API_HOST = "127.0.0.1"
DEFAULT_API_PORT = 8080


class UnsafeListenAddress(ValueError):
    """Without a token the API may only listen on a loopback address (contract §10)."""


@dataclass(frozen=True)
class ApiSettings:
    stream: Settings
    read_db: str
    host: str = DEFAULT_API_HOST
    port: int = DEFAULT_API_PORT
    token: str | None = None
    error_rate_warning: float = 0.03

    @property
    def masked(self) -> bool:
        """No token configured: phone numbers are masked in every response."""
        return self.token is None


def default_read_db(data_dir: str) -> str:
    return "sqlite:///" + str(Path(data_dir).resolve() / "readmodel.sqlite3")


def api_from_env(env: Mapping[str, str] = os.environ) -> ApiSettings:
    stream = from_env(env)

    def get(name: str) -> str | None:
        v = env.get(name)
        return v if v not in (None, "") else None

    return ApiSettings(
        stream=stream,
        read_db=get("SMSTALLY_READ_DB") or default_read_db(stream.data_dir),
        host=get("SMSTALLY_API_HOST") or DEFAULT_API_HOST,
        port=int(get("SMSTALLY_API_PORT") or DEFAULT_API_PORT),
        token=get("SMSTALLY_API_TOKEN"),
        error_rate_warning=float(get("SMSTALLY_ERROR_RATE_WARNING") or 0.03),
    )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_listen_address(s: ApiSettings) -> None:
    if s.token is None and not is_loopback(s.host):
        raise UnsafeListenAddress(
            f"refusing to listen on {s.host}: without SMSTALLY_API_TOKEN the API only listens on a "
            f"loopback address (127.0.0.1, ::1, localhost); set a token to serve other hosts"
        )
