"""mode-streaming (Faust's service framework) private names smstally uses. Checked with
mode-streaming 0.7.1 (see :mod:`streams.adapters.versions`); each is tested in
``tests/test_library_internals.py``.

* ``Service._stopped`` (a ``mode.utils.locks.Event``): set once a service is asked to stop.
  The batch record loop (``streams.consumer``) runs until the consumer's or its fetcher's
  event is set, exactly as Faust's own loop (``Consumer._drain_messages``) does. The public
  ``Service.should_stop`` is not the same test: it is also true once the service crashed,
  and Faust's loop does not stop on that.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def stop_requested(service: Any) -> Callable[[], bool]:
    """A function telling whether ``service`` (a mode Service) has been asked to stop."""
    is_set: Callable[[], bool] = service._stopped.is_set
    return is_set
