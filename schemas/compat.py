"""Can a new schema read everything written with an old one? (Avro resolution rules)

Kafka topics keep old records around (compacted outputs forever), so every
schema change must let the new reader resolve data from every older writer.
This checks the rules of the Avro specification ("Schema Resolution")
structurally, without any data, and reports each problem with its path so the
author of the change can see what to fix. Logical types do not take part in
resolution, but a change between two different logical types on the same
underlying type (timestamp-millis -> timestamp-micros) silently rescales
values, so it is reported too.
"""

from __future__ import annotations

from typing import Any

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED = frozenset({"record", "error", "enum", "fixed"})
# writer type -> reader types it may be read as
PROMOTIONS = {
    "int": {"long", "float", "double"},
    "long": {"float", "double"},
    "float": {"double"},
    "string": {"bytes"},
    "bytes": {"string"},
}


def _qualify(name: str, namespace: str) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


class _Names:
    """Named types declared anywhere in one schema, by full name."""

    def __init__(self, root: Any):
        self.types: dict[str, tuple[dict[str, Any], str]] = {}
        self._collect(root, "")

    def _collect(self, s: Any, ns: str) -> None:
        if isinstance(s, list):
            for branch in s:
                self._collect(branch, ns)
        elif isinstance(s, dict):
            t = s.get("type")
            if t in NAMED:
                full = _qualify(s["name"], s.get("namespace", ns))
                self.types.setdefault(full, (s, full))
                inner = full.rpartition(".")[0]
                for f in s.get("fields", ()):
                    self._collect(f.get("type"), inner)
            elif t == "array":
                self._collect(s.get("items"), ns)
            elif t == "map":
                self._collect(s.get("values"), ns)
            elif isinstance(t, (dict, list)):
                self._collect(t, ns)

    def resolve(self, s: Any, ns: str) -> tuple[str, Any, str]:
        """(kind, node, namespace): kind is a primitive name, 'union', 'array',
        'map', 'record', 'enum', 'fixed' or 'unknown'."""
        while isinstance(s, dict) and not isinstance(s.get("type"), str):
            s = s.get("type")  # {"type": {...}} or {"type": [...]} wrappers
        if isinstance(s, list):
            return "union", s, ns
        if isinstance(s, str):
            if s in PRIMITIVES:
                return s, {"type": s}, ns
            found = self.types.get(_qualify(s, ns)) or self.types.get(s)
            if found is None:
                return "unknown", s, ns
            s = found[0]
            ns = found[1].rpartition(".")[0]
        if not isinstance(s, dict):
            return "unknown", s, ns
        t = s["type"]
        if t in PRIMITIVES or t in ("array", "map"):
            return t, s, ns
        if t in NAMED:
            full = _qualify(s["name"], s.get("namespace", ns))
            return ("record" if t == "error" else t), s, full.rpartition(".")[0]
        return self.resolve(t, ns)  # {"type": "some.Named"}


def _label(kind: str, node: Any) -> str:
    if kind in ("record", "enum", "fixed"):
        return f"{kind} {node['name']}"
    return kind


class _Checker:
    def __init__(self, reader: Any, writer: Any):
        self.r = _Names(reader)
        self.w = _Names(writer)
        self.problems: list[str] = []
        self._active: set[tuple[int, int]] = set()

    def check(self, r: Any, rns: str, w: Any, wns: str, path: str) -> None:
        rk, rn, rns = self.r.resolve(r, rns)
        wk, wn, wns = self.w.resolve(w, wns)
        if "unknown" in (rk, wk):
            side, name = ("reader", rn) if rk == "unknown" else ("writer", wn)
            self.problems.append(f"{path}: {side} refers to undefined type {name!r}")
            return
        if wk == "union":
            for branch in wn:  # every branch may occur in old data
                before = len(self.problems)
                self.check(rn, rns, branch, wns, path)
                if rk != "union" and len(self.problems) > before:
                    label = _label(*self.w.resolve(branch, wns)[:2])
                    self.problems[before:] = [f"{p} (writer union branch {label})" for p in self.problems[before:]]
            return
        if rk == "union":
            match = self._pick(rn, rns, wk, wn)
            if match is None:
                labels = ", ".join(_label(*self.r.resolve(b, rns)[:2]) for b in rn)
                self.problems.append(f"{path}: writer {_label(wk, wn)} matches no branch of reader union [{labels}]")
            else:
                self.check(match, rns, wn, wns, path)
            return
        if wk in PRIMITIVES and rk in PRIMITIVES:
            if rk != wk and rk not in PROMOTIONS.get(wk, ()):
                self.problems.append(f"{path}: type changed from {wk} to {rk}, which Avro cannot promote")
            else:
                self._logical(rn, wn, path)
            return
        if rk != wk:
            self.problems.append(f"{path}: writer {_label(wk, wn)} cannot be read as {_label(rk, rn)}")
            return
        if rk == "array":
            self.check(rn.get("items"), rns, wn.get("items"), wns, path + "[]")
        elif rk == "map":
            self.check(rn.get("values"), rns, wn.get("values"), wns, path + "{}")
        elif not self._same_name(rn, rns, wn, wns):
            self.problems.append(f"{path}: writer {_label(wk, wn)} cannot be read as {_label(rk, rn)} (names differ)")
        elif rk == "fixed":
            if rn.get("size") != wn.get("size"):
                self.problems.append(f"{path}: fixed size changed from {wn.get('size')} to {rn.get('size')}")
        elif rk == "enum":
            self._enum(rn, wn, path)
        else:
            self._record(rn, rns, wn, wns, path)

    def _pick(self, branches: list[Any], ns: str, wk: str, wn: Any) -> Any:
        """The reader branch Avro selects: same type (and name) first, then a promotion."""
        resolved = [(b, *self.r.resolve(b, ns)) for b in branches]
        for b, k, n, bns in resolved:
            if k == wk and (k not in ("record", "enum", "fixed") or self._same_name(n, bns, wn, "")):
                return b
        for b, k, _, _ in resolved:
            if k in PROMOTIONS.get(wk, ()):
                return b
        return None

    @staticmethod
    def _same_name(rn: dict[str, Any], rns: str, wn: dict[str, Any], wns: str) -> bool:
        wshort = wn["name"].rpartition(".")[2]
        if rn["name"].rpartition(".")[2] == wshort:
            return True
        return any(a.rpartition(".")[2] == wshort for a in rn.get("aliases", ()))

    def _logical(self, rn: dict[str, Any], wn: dict[str, Any], path: str) -> None:
        rl, wl = rn.get("logicalType"), wn.get("logicalType")
        if rl and wl and rl != wl:
            self.problems.append(f"{path}: logical type changed from {wl} to {rl}: values would be misread")
        elif rl == wl == "decimal" and (
            (rn.get("scale", 0), rn.get("precision")) != (wn.get("scale", 0), wn.get("precision"))
        ):
            self.problems.append(f"{path}: decimal precision/scale changed")

    def _enum(self, rn: dict[str, Any], wn: dict[str, Any], path: str) -> None:
        symbols = rn.get("symbols", [])
        default = rn.get("default")
        if default is not None and default not in symbols:
            self.problems.append(f"{path}: enum {rn['name']} default {default!r} is not one of its symbols")
            default = None
        removed = [s for s in wn.get("symbols", []) if s not in symbols]
        if removed and default is None:
            self.problems.append(
                f"{path}: enum {rn['name']} lost symbol(s) {', '.join(removed)} and has no default to read them as"
            )

    def _record(self, rn: dict[str, Any], rns: str, wn: dict[str, Any], wns: str, path: str) -> None:
        key = (id(rn), id(wn))
        if key in self._active:  # recursive type: already being checked higher up
            return
        self._active.add(key)
        base = f"{path}." if path else f"{rn['name']}."
        wfields = {f["name"]: f for f in wn.get("fields", [])}
        for f in rn.get("fields", []):
            match = next((wfields[n] for n in [f["name"], *f.get("aliases", ())] if n in wfields), None)
            if match is not None:
                self.check(f.get("type"), rns, match.get("type"), wns, base + f["name"])
            elif "default" not in f:
                self.problems.append(f"{base}{f['name']}: new field without a default: old records cannot be read")
            else:
                problem = self._bad_default(f.get("type"), rns, f["default"])
                if problem:
                    self.problems.append(f"{base}{f['name']}: default {f['default']!r} {problem}")
        self._active.discard(key)

    def _bad_default(self, s: Any, ns: str, value: Any, depth: int = 0) -> str | None:
        """Why `value` is not a valid default for `s` (None if it is).

        A union's default must match its first branch: Avro 1.12 Java accepts
        any branch, but older readers (and most other languages) do not.
        """
        kind, node, ns = self.r.resolve(s, ns)
        if depth > 32 or kind == "unknown":
            return None
        if kind == "union":
            if not node:
                return "is for an empty union"
            why = self._bad_default(node[0], ns, value, depth + 1)
            return f"must match the union's first branch ({why})" if why else None
        ok = {
            "null": value is None,
            "boolean": isinstance(value, bool),
            "int": isinstance(value, int) and not isinstance(value, bool) and -(2**31) <= value < 2**31,
            "long": isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63,
            "float": isinstance(value, (int, float)) and not isinstance(value, bool),
            "double": isinstance(value, (int, float)) and not isinstance(value, bool),
            "bytes": isinstance(value, str),
            "string": isinstance(value, str),
            "fixed": isinstance(value, str),
            "enum": value in node.get("symbols", ()) if kind == "enum" else False,
            "array": isinstance(value, list),
            "map": isinstance(value, dict),
            "record": isinstance(value, dict),
        }[kind]
        if not ok:
            return f"is not a valid {kind}"
        if kind == "array":
            return next(filter(None, (self._bad_default(node.get("items"), ns, v, depth + 1) for v in value)), None)
        if kind == "map":
            bad = (self._bad_default(node.get("values"), ns, v, depth + 1) for v in value.values())
            return next(filter(None, bad), None)
        if kind == "record":
            for f in node.get("fields", []):
                if f["name"] in value:
                    why = self._bad_default(f.get("type"), ns, value[f["name"]], depth + 1)
                elif "default" not in f:
                    why = f"lacks field {f['name']}"
                else:
                    why = None
                if why:
                    return why
        return None


def backward_compatible(reader: dict[str, Any], writer: dict[str, Any]) -> list[str]:
    """Problems that stop `reader` (the new schema) from reading data written
    with `writer` (the old one); empty means compatible."""
    checker = _Checker(reader, writer)
    checker.check(reader, "", writer, "", "")
    return checker.problems
