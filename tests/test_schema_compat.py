"""Schema evolution guard (CONTRACT.md section 2): the working-tree schemas must
read everything any earlier committed version wrote, because compacted output
topics keep old records forever and upstream producers upgrade on their own
schedule."""

from __future__ import annotations

import json
import subprocess
import warnings
from pathlib import Path

import fastavro
import pytest

from schemas.compat import backward_compatible

REPO = Path(__file__).resolve().parents[1]
SCHEMA_DIR = REPO / "schemas"
AVSC = sorted(p.name for p in SCHEMA_DIR.glob("*.avsc"))


class GitUnavailable(Exception):
    pass


def git(*args: str) -> str:
    try:
        done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GitUnavailable(str(exc)) from None
    if done.returncode != 0:
        raise GitUnavailable(done.stderr.strip() or f"git {' '.join(args)} failed")
    return done.stdout


def earlier_versions(filename: str) -> tuple[list[tuple[str, str]], str | None]:
    """(label, text) of every committed version, plus a note when history was
    not available and only HEAD (or nothing) could be compared."""
    rel = f"schemas/{filename}"
    note = None
    try:
        commits = git("log", "--format=%H", "--", rel).split()
    except GitUnavailable as exc:
        commits, note = [], f"git history unavailable ({exc}); compared with HEAD only"
    refs = list(commits) or ["HEAD"]
    for branch in ("main", "origin/main"):  # the contract's reference, if it moved ahead of us
        try:
            refs.append(git("rev-parse", "--verify", "--quiet", f"{branch}^{{commit}}").strip())
        except GitUnavailable:
            pass
    versions, seen = [], set()
    for ref in refs:
        try:
            text = git("show", f"{ref}:{rel}")
        except GitUnavailable:
            continue  # not in that commit (deleted there, or a new file)
        if text not in seen:
            seen.add(text)
            versions.append((ref[:10], text))
    return versions, note


def _cases():
    cases = []
    for name in AVSC:
        versions, note = earlier_versions(name)
        if note:
            warnings.warn(f"{name}: {note}", stacklevel=1)
        if not versions:
            cases.append(pytest.param(name, None, None, id=f"{name}@none"))
        for label, text in versions:
            cases.append(pytest.param(name, label, text, id=f"{name}@{label}"))
    return cases


@pytest.mark.parametrize(("filename", "label", "old_text"), _cases())
def test_schema_reads_every_earlier_version(filename, label, old_text):
    reader = json.loads((SCHEMA_DIR / filename).read_text(encoding="utf-8"))
    fastavro.parse_schema(reader, named_schemas={})  # the new schema itself is valid Avro
    if old_text is None:
        try:
            git("rev-parse", "HEAD")
        except GitUnavailable as exc:
            pytest.skip(f"cannot compare {filename} with anything: no git repository ({exc})")
        return  # a schema not yet committed anywhere: nothing older to read
    problems = backward_compatible(reader, json.loads(old_text))
    assert not problems, f"schemas/{filename} cannot read data written with {label}:\n" + "\n".join(problems)


def test_history_is_really_compared():
    """Guards against the check above passing because it compared nothing."""
    try:
        git("rev-parse", "HEAD")
    except GitUnavailable as exc:
        pytest.skip(f"no git repository: {exc}")
    committed = [name for name in AVSC if earlier_versions(name)[0]]
    assert len(committed) >= 8, committed


# -- the checker itself -------------------------------------------------------------------


def rec(*fields, name="R", **extra):
    return {"type": "record", "name": name, "namespace": "t", "fields": list(fields), **extra}


def field(name, type_, **extra):
    return {"name": name, "type": type_, **extra}


def enum(symbols, **extra):
    return {"type": "enum", "name": "E", "symbols": symbols, **extra}


def ok(reader, writer):
    return backward_compatible(reader, writer) == []


def test_added_field_needs_a_default():
    old = rec(field("a", "string"))
    problems = backward_compatible(rec(field("a", "string"), field("b", "int")), old)
    assert len(problems) == 1 and "R.b" in problems[0] and "default" in problems[0]
    assert ok(rec(field("a", "string"), field("b", "int", default=1)), old)
    assert ok(rec(field("a", "string"), field("b", ["null", "int"], default=None)), old)


def test_added_field_default_must_fit_its_type():
    old = rec(field("a", "string"))
    assert backward_compatible(rec(field("a", "string"), field("b", "int", default="x")), old)
    assert backward_compatible(rec(field("a", "string"), field("b", "int", default=2**31)), old)
    assert backward_compatible(rec(field("a", "string"), field("b", ["null", "string"], default="x")), old)
    assert backward_compatible(rec(field("a", "string"), field("e", enum(["A"]), default="B")), old)
    assert ok(rec(field("a", "string"), field("b", ["string", "null"], default="x")), old)
    assert ok(rec(field("a", "string"), field("m", {"type": "map", "values": "long"}, default={"x": 1})), old)


def test_removed_field_is_fine():
    assert ok(rec(field("a", "string")), rec(field("a", "string"), field("b", "int")))


@pytest.mark.parametrize(
    ("writer", "reader"),
    [
        ("int", "long"),
        ("int", "float"),
        ("int", "double"),
        ("long", "float"),
        ("long", "double"),
        ("float", "double"),
        ("string", "bytes"),
        ("bytes", "string"),
        ("int", "int"),
    ],
)
def test_promotions_allowed(writer, reader):
    assert ok(rec(field("x", reader)), rec(field("x", writer)))


@pytest.mark.parametrize(
    ("writer", "reader"),
    [
        ("long", "int"),
        ("double", "float"),
        ("float", "long"),
        ("string", "int"),
        ("boolean", "int"),
        ("null", "string"),
    ],
)
def test_narrowing_reported(writer, reader):
    problems = backward_compatible(rec(field("x", reader)), rec(field("x", writer)))
    assert len(problems) == 1 and "R.x" in problems[0] and writer in problems[0]


def test_enum_symbols():
    old = rec(field("e", enum(["A", "B", "C"])))
    removed = backward_compatible(rec(field("e", enum(["A", "B"]))), old)
    assert len(removed) == 1 and "C" in removed[0]
    assert ok(rec(field("e", enum(["A", "B", "OTHER"], default="OTHER"))), old)
    assert ok(rec(field("e", enum(["A", "B", "C", "D"]))), old)  # added symbol
    assert backward_compatible(rec(field("e", enum(["A", "B"], default="Z"))), old)  # default not a symbol


def test_unions():
    assert ok(rec(field("x", ["null", "string"])), rec(field("x", "string")))
    assert ok(rec(field("x", ["null", "long"])), rec(field("x", ["null", "int"])))
    assert ok(rec(field("x", ["null", "string", "int"])), rec(field("x", ["int", "null"])))
    assert backward_compatible(rec(field("x", "string")), rec(field("x", ["null", "string"])))
    assert backward_compatible(rec(field("x", ["null", "int"])), rec(field("x", ["null", "long"])))


def test_maps_arrays_and_kind_changes():
    m = lambda v: {"type": "map", "values": v}  # noqa: E731
    a = lambda v: {"type": "array", "items": v}  # noqa: E731
    assert ok(rec(field("m", m("long"))), rec(field("m", m("int"))))
    assert backward_compatible(rec(field("m", m("int"))), rec(field("m", m("long"))))
    assert ok(rec(field("a", a("bytes"))), rec(field("a", a("string"))))
    problems = backward_compatible(rec(field("a", a("int"))), rec(field("a", m("int"))))
    assert problems and "map" in problems[0]
    nested = backward_compatible(rec(field("a", a(m("int")))), rec(field("a", a(m("string")))))
    assert nested and "R.a[]{}" in nested[0]


def test_nested_and_named_records():
    inner_old = rec(field("x", "long"), name="Inner")
    inner_new = rec(field("x", "int"), name="Inner")
    problems = backward_compatible(
        rec(field("i", inner_new), field("j", "Inner")), rec(field("i", inner_old), field("j", "t.Inner"))
    )
    assert len(problems) == 2 and problems[0].startswith("R.i.x") and problems[1].startswith("R.j.x")
    assert ok(rec(field("i", inner_old), field("j", "Inner")), rec(field("i", inner_new), field("j", "Inner")))
    renamed = rec(field("x", "long"), name="Renamed")
    assert backward_compatible(rec(field("i", renamed)), rec(field("i", inner_old)))
    assert ok(rec(field("i", dict(renamed, aliases=["Inner"]))), rec(field("i", inner_old)))


def test_fixed_logical_and_undefined_types():
    fixed = lambda n: {"type": "fixed", "name": "F", "size": n}  # noqa: E731
    assert ok(rec(field("f", fixed(4))), rec(field("f", fixed(4))))
    assert backward_compatible(rec(field("f", fixed(8))), rec(field("f", fixed(4))))
    ts = lambda lt: {"type": "long", "logicalType": lt}  # noqa: E731
    assert ok(rec(field("t", ts("timestamp-millis"))), rec(field("t", "long")))
    assert backward_compatible(rec(field("t", ts("timestamp-micros"))), rec(field("t", ts("timestamp-millis"))))
    assert backward_compatible(rec(field("x", "Missing")), rec(field("x", "string")))


def test_recursive_types_terminate():
    linked = rec(field("value", "long"), field("next", ["null", "Node"], default=None), name="Node")
    assert ok(linked, linked)


def test_real_schema_mutations_are_caught():
    path = SCHEMA_DIR / "MessageSent.avsc"
    current = json.loads(path.read_text(encoding="utf-8"))
    worse = json.loads(json.dumps(current))
    outcome = next(f for f in worse["fields"] if f["name"] == "outcome")
    outcome["type"]["symbols"].remove("NOT_SENT")
    del outcome["type"]["default"]
    worse["fields"].append({"name": "retries", "type": "int"})
    problems = backward_compatible(worse, current)
    assert len(problems) == 2, problems
    assert ok(current, current)


# -- the contract's schema rules ------------------------------------------------------------


def _walk(schema):
    if isinstance(schema, list):
        for branch in schema:
            yield from _walk(branch)
    elif isinstance(schema, dict):
        yield schema
        for key in ("type", "items", "values"):
            yield from _walk(schema.get(key))
        for f in schema.get("fields", ()):
            yield f
            yield from _walk(f["type"])


@pytest.mark.parametrize("filename", AVSC)
def test_contract_rules(filename):
    """Enums carry a default symbol; optional fields are ["null", T] with default null;
    timestamps (*_at) are long timestamp-millis."""
    schema = json.loads((SCHEMA_DIR / filename).read_text(encoding="utf-8"))
    assert schema["namespace"] == "smstally" and schema["name"] == filename[:-5]
    for node in _walk(schema):
        if node.get("type") == "enum":
            assert node.get("default") in node["symbols"], f"enum {node['name']} needs a default symbol"
        if "name" in node and isinstance(node.get("type"), list):
            assert node["type"][0] == "null" and len(node["type"]) == 2, f"{node['name']}: optional is [null, T]"
            assert node.get("default", "missing") is None, f"{node['name']}: optional defaults to null"
        if "name" in node and node["name"].endswith("_at") and "fields" not in node:
            t = node["type"][-1] if isinstance(node["type"], list) else node["type"]
            assert t == {"type": "long", "logicalType": "timestamp-millis"}, f"{node['name']} is not timestamp-millis"
