"""At least once, yet exact: random SIGKILLs of workers in a group, some on wiped state."""

from __future__ import annotations

import pytest

from tests.chaos import run_chaos

# Part of the default run; alone: ./run test -m chaos -s. The long version is scripts/crash_soak.py.
pytestmark = [pytest.mark.integration, pytest.mark.chaos]


@pytest.mark.timeout(900)
def test_random_kills_lose_nothing_and_count_nothing_twice(tmp_path):
    # The receipts come from a librdkafka producer (CRC32): most are forwarded to the
    # partition of their send (SMSTALLY_INPUT_PARTITIONING=auto), crashes in between included.
    report = run_chaos(
        tmp_path, workers=3, messages=2500, kills=10, seed=5, settle_timeout=120, partitioners={"sms.dlr": "crc32"}
    )
    print("\n" + report.line())
    assert report.kills >= 10
    assert report.mismatches == [], "\n".join(report.mismatches)
