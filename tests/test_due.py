"""The timeout and orphan index: exactly the keys due, earliest first, and memory that
follows the keys still due rather than every key ever set."""
from hypothesis import given, strategies as st

from processors.due import DueIndex

ops = st.lists(st.tuples(st.sampled_from(["set", "discard", "pop"]), st.integers(0, 30), st.integers(0, 100)),
               max_size=200)


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
    assert len(index) == 0 and len(index._heap) <= 2 * 0 + 4097
