"""The timeout and orphan index: exactly the keys due, earliest first, and memory that
follows the keys still due rather than every key ever set."""

from hypothesis import given
from hypothesis import strategies as st

from processors.due import DueIndex

ops = st.lists(
    st.tuples(st.sampled_from(["set", "discard", "pop"]), st.integers(0, 30), st.integers(0, 100)), max_size=200
)


@given(ops)
def test_pop_due_yields_exactly_the_keys_due_earliest_first(program):
    index, model = DueIndex(), {}
    for op, k, t in program:
        key = f"k{k}"
        if op == "set":
            index.set(key, t)
            model[key] = t
        elif op == "discard":
            index.discard(key)
            model.pop(key, None)
        else:
            got = list(index.pop_due(t))
            want = sorted((at, kk) for kk, at in model.items() if at <= t)
            assert got == [kk for _, kk in want]
            for kk in got:
                del model[kk]
        assert len(index) == len(model)


def test_memory_follows_the_keys_still_due():
    index = DueIndex()
    for i in range(100_000):
        index.set(f"m{i}", i)
        index.discard(f"m{i}")  # e.g. a final receipt right after the send
    assert len(index) == 0 and len(index._heap) <= 4097


def test_stale_entries_stay_under_a_quarter_of_the_live_ones():
    """A worker catching up may hold ~300k PENDING messages; most of them get their receipt
    later, and what the heap keeps for them must not grow with the live count."""
    index = DueIndex()
    for i in range(200_000):
        index.set(f"m{i}", i)
    for i in range(0, 200_000, 2):
        index.discard(f"m{i}")
        assert len(index._heap) <= len(index) * 1.25 + 4097
    assert len(index) == 100_000
    assert list(index.pop_due(10)) == ["m1", "m3", "m5", "m7", "m9"]
