"""At least once, yet exact: random SIGKILLs of workers in a group, some on wiped state."""
from __future__ import annotations

import pytest

from tests.chaos import run_chaos

# Not in the default run: in about one run in ten, two receipts folded before a kill are
# missing afterwards (suspected: Faust's post-recovery seek cut short by a second rebalance,
# "exception performing seek when flow not active"). Open in issue 3; run with -m chaos.
pytestmark = [pytest.mark.integration, pytest.mark.chaos]


@pytest.mark.timeout(900)
def test_random_kills_lose_nothing_and_count_nothing_twice(tmp_path):
    report = run_chaos(tmp_path, workers=3, messages=2500, kills=10, seed=5, settle_timeout=120)
    print("\n" + report.line())
    assert report.kills >= 10
    assert report.mismatches == [], "\n".join(report.mismatches)
