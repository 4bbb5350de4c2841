"""Shared fixtures.

``broker`` is one embedded Tansu broker for the whole session: starting one
is cheap (~0.1 s) but tests share it to stay fast, so each test uses its own
topic and group names. It is stopped at the end even if the session fails,
and cannot outlive a crashed pytest: it runs in its own process group, is
stopped by atexit, and on Linux is SIGTERMed by the kernel when pytest dies
(see ``streams.broker``).
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    """A running embedded broker on a free port: ``.url`` and ``.bootstrap``."""
    from streams.broker import EmbeddedBroker, free_port

    log_path = tmp_path_factory.mktemp("broker") / "tansu.log"
    instance = EmbeddedBroker(f"kafka://127.0.0.1:{free_port()}", log_path=log_path)
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()
