"""The library versions smstally's uses of their private names were checked with.

:func:`check_versions` runs when a worker starts (``smstally worker``). Another installed
version of one of these libraries may have renamed or changed a private name the adapters
use, and the failure would then show up late and far from its cause (a crash in the
record loop, a silently wrong offset). So the worker refuses to start, with a message
naming the installed and the tested version. ``SMSTALLY_ALLOW_UNTESTED_LIBRARIES=1``
starts it anyway (at one's own risk), with a warning; run ``tests/test_library_internals.py``
against the new version before relying on it, and update :data:`TESTED` and the pins in
``pyproject.toml`` together.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from importlib import metadata

log = logging.getLogger("smstally")

#: Distribution name -> the exact version the adapters were checked with (pyproject.toml pins these).
TESTED: Mapping[str, str] = {
    "faust-streaming": "0.15.3",
    "aiokafka": "0.14.0",
    "mode-streaming": "0.7.1",
}

#: Set to 1 (or true/yes) to start a worker on untested library versions anyway.
OVERRIDE_VAR = "SMSTALLY_ALLOW_UNTESTED_LIBRARIES"


class UntestedLibraries(RuntimeError):
    """Installed library versions differ from the ones smstally was tested with."""


def installed_version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def mismatches(installed: Mapping[str, str | None] | None = None) -> list[str]:
    """One line per library whose installed version is not the tested one; empty when all match."""
    lines = []
    for name, tested in TESTED.items():
        found = installed_version(name) if installed is None else installed.get(name)
        if found != tested:
            lines.append(f"{name} {found or 'not installed'} is installed, smstally is tested with {name}=={tested}")
    return lines


def _allowed(env: Mapping[str, str]) -> bool:
    return env.get(OVERRIDE_VAR, "").strip().lower() in ("1", "true", "yes")


def check_versions(env: Mapping[str, str], installed: Mapping[str, str | None] | None = None) -> None:
    """Raise :class:`UntestedLibraries` when a library's installed version is not the tested one,
    unless ``env`` sets :data:`OVERRIDE_VAR`: then log a warning and return."""
    lines = mismatches(installed)
    if not lines:
        return
    text = "; ".join(lines)
    if _allowed(env):
        log.warning(
            "%s. Starting anyway (%s is set): smstally relies on private names of these "
            "libraries (streams/adapters/), which this version may have changed",
            text,
            OVERRIDE_VAR,
        )
        return
    raise UntestedLibraries(
        f"{text}. smstally relies on private names of these libraries (streams/adapters/), "
        f"checked with the tested versions only: install those (pip install -e .), or set "
        f"{OVERRIDE_VAR}=1 to start anyway at your own risk (tests/test_library_internals.py "
        f"tells whether the private names still fit)"
    )
