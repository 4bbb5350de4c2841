"""Workarounds for brokers that speak Kafka's protocol but differ from Kafka.

Each broker flavor gets one module; only :mod:`streams.compat.tansu` exists.
Nothing here is active against a real Kafka: the worker calls
``apply(flavor)`` with ``SMSTALLY_BROKER_FLAVOR`` (or a detected flavor) and
merges ``faust_settings(flavor)`` into its Faust configuration.
"""

from __future__ import annotations

from . import tansu
from .tansu import apply, detect_flavor, faust_settings, normalize_flavor

__all__ = ["apply", "detect_flavor", "faust_settings", "normalize_flavor", "tansu"]
