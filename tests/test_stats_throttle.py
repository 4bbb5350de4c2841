"""Contract §6: CampaignStats throttled per campaign, and always published after the last change."""

from hypothesis import given
from hypothesis import strategies as st

from processors.stats_throttle import StatsThrottle


def test_a_change_during_the_send_is_published_later():
    """The publisher awaits the producer after taking a campaign; a fold that runs meanwhile
    marks it again, and that mark must survive (it was erased, and the last change of a
    campaign never went out)."""
    t = StatsThrottle(0.25)
    t.mark("c1")
    assert t.take_due(10.0) == ["c1"]
    t.mark("c1")  # folded while the figures taken above were being sent
    assert t.take_due(10.1) == []  # throttled ...
    assert t.take_due(10.25) == ["c1"]  # ... but not lost
    assert t.take_due(11.0) == []


def test_at_most_once_per_interval_per_campaign():
    t = StatsThrottle(1.0)
    for cid in ("a", "b"):
        t.mark(cid)
    assert t.take_due(0.0) == ["a", "b"]
    t.mark("a")
    t.mark("b")
    assert t.take_due(0.5) == []
    assert t.take_due(1.0) == ["a", "b"]


def test_a_failed_send_is_retried_at_once():
    t = StatsThrottle(5.0)
    t.mark("c1")
    assert t.take_due(0.0) == ["c1"]
    t.failed("c1")
    assert t.take_due(0.1) == ["c1"]


@given(
    st.lists(
        st.tuples(st.sampled_from(["mark", "take", "fail"]), st.sampled_from(["a", "b", "c"]), st.floats(0, 2)),
        max_size=60,
    )
)
def test_every_change_is_followed_by_a_publication(program):
    """Whatever the interleaving of changes, sends in flight and failed sends, once the
    changes stop the figures of every campaign's last change go out. A send carries the
    figures as they were when the campaign was taken."""
    t = StatsThrottle(0.5)
    now = 0.0
    changes: dict[str, int] = {}  # campaign -> changes so far
    published: dict[str, int] = {}  # campaign -> changes included in its latest publication
    in_flight: dict[str, int] = {}  # campaign -> changes included in the send under way

    def take() -> None:
        for c, n in in_flight.items():  # the previous round's sends succeeded
            published[c] = max(published.get(c, 0), n)
        in_flight.clear()
        for c in t.take_due(now):
            in_flight[c] = changes[c]

    for op, cid, dt in program:
        now += dt
        if op == "mark":
            t.mark(cid)
            changes[cid] = changes.get(cid, 0) + 1
        elif op == "take":
            take()
        elif op == "fail" and cid in in_flight:
            del in_flight[cid]
            t.failed(cid)
    for _ in range(4):  # changes stopped: a tick per interval
        now += 0.5
        take()
    take()
    assert {c: published.get(c, 0) for c in changes} == changes
    assert not t.dirty
