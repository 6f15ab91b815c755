"""JSONC (JSON with // and /* */ comments and trailing commas), as OpenCode and VS Code accept it.

parse(text) reads it. set_keys(text, edits) changes only the named keys: it finds the byte span of
each key's value in the original text and splices new JSON there (or inserts the member at the end
of its object), so everything else — comments, order, formatting, other keys — stays byte for byte.
The result is parsed again and compared with the intended data; when anything differs, or a key
cannot be reached safely (the root or a parent is not an object), it raises EditRefused instead of
writing: never a silent loss.
"""
from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from typing import Any

from launcher.errors import InputError

_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_WS = " \t\r\n\ufeff"


class JsoncError(InputError):
    """The text is not valid JSON/JSONC; names the line and column."""


class EditRefused(InputError):
    """A comment-preserving edit could not be done safely; carries the block to paste by hand."""


@dataclass
class Node:
    start: int
    end: int  # exclusive
    kind: str  # "object" | "array" | "scalar"
    value: Any = None  # scalars: the value
    members: list["Member"] = field(default_factory=list)  # objects
    items: list["Node"] = field(default_factory=list)  # arrays

    def member(self, key: str) -> "Member | None":
        found = None
        for m in self.members:  # duplicates: the last one wins, as in JSON.parse
            if m.key == key:
                found = m
        return found

    def to_python(self) -> Any:
        if self.kind == "object":
            return {m.key: m.value.to_python() for m in self.members}
        if self.kind == "array":
            return [i.to_python() for i in self.items]
        return self.value


@dataclass
class Member:
    key: str
    key_start: int
    value: Node


def _line_col(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return line, col


class _Parser:
    def __init__(self, text: str, where: str | None):
        self.text = text
        self.where = where
        self.pos = 0

    def fail(self, msg: str, pos: int | None = None):
        line, col = _line_col(self.text, self.pos if pos is None else pos)
        loc = f"{self.where}:{line}:{col}" if self.where else f"line {line}, column {col}"
        raise JsoncError(f"not valid JSON/JSONC: {msg}", where=loc,
                         fix="fix the file by hand (a JSON/JSONC validator shows the spot)")

    def skip(self) -> None:
        t, n = self.text, len(self.text)
        while self.pos < n:
            c = t[self.pos]
            if c in _WS:
                self.pos += 1
            elif t.startswith("//", self.pos):
                nl = t.find("\n", self.pos)
                self.pos = n if nl < 0 else nl + 1
            elif t.startswith("/*", self.pos):
                close = t.find("*/", self.pos + 2)
                if close < 0:
                    self.fail("a /* comment is never closed")
                self.pos = close + 2
            else:
                return

    def value(self) -> Node:
        self.skip()
        t = self.text
        if self.pos >= len(t):
            self.fail("unexpected end of text")
        c = t[self.pos]
        start = self.pos
        if c == "{":
            return self.obj()
        if c == "[":
            return self.arr()
        if c == '"':
            s = self.string()
            return Node(start, self.pos, "scalar", s)
        for word, val in (("true", True), ("false", False), ("null", None)):
            if t.startswith(word, self.pos):
                self.pos += len(word)
                return Node(start, self.pos, "scalar", val)
        m = _NUMBER.match(t, self.pos)
        if m and m.end() > start:
            self.pos = m.end()
            num = m.group()
            val = int(num) if re.fullmatch(r"-?\d+", num) else float(num)
            return Node(start, self.pos, "scalar", val)
        self.fail(f"unexpected character {c!r}")

    def string(self) -> str:
        try:
            s, end = json.decoder.scanstring(self.text, self.pos + 1)
        except json.JSONDecodeError as exc:
            self.fail(exc.msg, exc.pos)
        self.pos = end
        return s

    def obj(self) -> Node:
        node = Node(self.pos, -1, "object")
        self.pos += 1
        while True:
            self.skip()
            if self.pos >= len(self.text):
                self.fail("an object is never closed", node.start)
            if self.text[self.pos] == "}":
                self.pos += 1
                node.end = self.pos
                return node
            if self.text[self.pos] != '"':
                self.fail("expected a quoted key or }")
            key_start = self.pos
            key = self.string()
            self.skip()
            if self.pos >= len(self.text) or self.text[self.pos] != ":":
                self.fail("expected : after a key")
            self.pos += 1
            node.members.append(Member(key, key_start, self.value()))
            self.skip()
            if self.pos < len(self.text) and self.text[self.pos] == ",":
                self.pos += 1
            elif self.pos < len(self.text) and self.text[self.pos] != "}":
                self.fail("expected , or }")

    def arr(self) -> Node:
        node = Node(self.pos, -1, "array")
        self.pos += 1
        while True:
            self.skip()
            if self.pos >= len(self.text):
                self.fail("an array is never closed", node.start)
            if self.text[self.pos] == "]":
                self.pos += 1
                node.end = self.pos
                return node
            node.items.append(self.value())
            self.skip()
            if self.pos < len(self.text) and self.text[self.pos] == ",":
                self.pos += 1
            elif self.pos < len(self.text) and self.text[self.pos] != "]":
                self.fail("expected , or ]")


def parse_tree(text: str, *, where: str | None = None) -> Node:
    p = _Parser(text, where)
    node = p.value()
    p.skip()
    if p.pos != len(text):
        p.fail("unexpected text after the end of the document")
    return node


def parse(text: str, *, where: str | None = None) -> Any:
    """Parse JSON or JSONC. Raises JsoncError naming where:line:col."""
    if not text.strip(_WS):
        return {}
    return parse_tree(text, where=where).to_python()


# ---------------------------------------------------------------- editing


def dumps(value: Any, indent: str = "  ", base: str = "") -> str:
    """JSON text; lines after the first are indented by base (so it can sit inside a document)."""
    out = json.dumps(value, indent=indent, ensure_ascii=False)
    return out.replace("\n", "\n" + base)


def _indent_unit(text: str) -> str:
    m = re.search(r"\n([ \t]+)[\"}\]]", text)
    if not m:
        return "  "
    ws = m.group(1)
    return "\t" if ws.startswith("\t") else " " * min(len(ws), 8)


def _line_indent(text: str, pos: int) -> tuple[str, bool]:
    """The leading whitespace of pos's line, and whether pos is the first non-blank there."""
    line_start = text.rfind("\n", 0, pos) + 1
    prefix = text[line_start:pos]
    stripped = prefix.lstrip(" \t")
    return prefix[: len(prefix) - len(stripped)], stripped == ""


def _nest(path: tuple[str, ...], value: Any) -> Any:
    for key in reversed(path):
        value = {key: value}
    return value


def _apply_data(data: dict, path: tuple[str, ...], value: Any) -> None:
    cur = data
    for key in path[:-1]:
        nxt = cur.get(key)
        if not isinstance(nxt, dict):
            nxt = cur[key] = {}
        cur = nxt
    cur[path[-1]] = copy.deepcopy(value)


class _Refuse(Exception):
    pass


def _edit_once(text: str, path: tuple[str, ...], value: Any) -> str:
    root = parse_tree(text) if text.strip(_WS) else None
    unit = _indent_unit(text)
    if root is None:
        return dumps(_nest(path, value), unit) + "\n"
    if root.kind != "object":
        raise _Refuse("the top level is not a JSON object")
    cur = root
    for i, key in enumerate(path):
        m = cur.member(key)
        if m is None:
            return _insert(text, cur, key, _nest(path[i + 1:], value), unit)
        if i == len(path) - 1:
            if m.value.to_python() == value and type(m.value.to_python()) is type(value):
                return text
            base, _ = _line_indent(text, m.key_start)
            return text[: m.value.start] + dumps(value, unit, base) + text[m.value.end:]
        if m.value.kind != "object":
            raise _Refuse(f"'{'.'.join(path[: i + 1])}' is not an object")
        cur = m.value
    return text  # pragma: no cover - the loop always returns


def _insert(text: str, obj: Node, key: str, value: Any, unit: str) -> str:
    close = obj.end - 1  # the position of }
    if obj.members:
        last = obj.members[-1]
        member_indent, first_on_line = _line_indent(text, last.key_start)
        if not first_on_line:
            member_indent = _line_indent(text, obj.start)[0] + unit
    else:
        member_indent = _line_indent(text, obj.start)[0] + unit
    member = json.dumps(key, ensure_ascii=False) + ": " + dumps(value, unit, member_indent)
    inner = text[obj.start + 1: close]
    if not obj.members and not inner.strip(_WS):
        outer = _line_indent(text, obj.start)[0]
        return text[: obj.start + 1] + "\n" + member_indent + member + "\n" + outer + text[close:]
    at = close
    while at > obj.start + 1 and text[at - 1] in _WS:
        at -= 1
    new = text[:at] + "\n" + member_indent + member + text[at:]
    if obj.members:
        # a comma after the last value, unless it already has a trailing one
        p = _Parser(text, None)
        p.pos = obj.members[-1].value.end
        p.skip()
        if text[p.pos] != ",":
            end = obj.members[-1].value.end
            new = new[:end] + "," + new[end:]
    return new


def set_keys(text: str, edits: list[tuple[tuple[str, ...], Any]], *, where: str, block: str) -> str:
    """Set each (path, value) in text, keeping the rest byte for byte.

    where names the file for messages; block is what to tell the user to paste when refusing.
    """
    def refuse(reason: str):
        raise EditRefused(
            f"cannot merge launch's settings into {where} without risking your content: {reason}",
            where=where,
            fix=f"add this block to {where} by hand, or use --write default (launch's own file, "
                "yours untouched)",
            details=["", *block.splitlines()])

    try:
        before = parse(text, where=where)
    except JsoncError as exc:
        refuse(f"it does not parse ({exc.where}: {exc.what})")
    if not isinstance(before, dict):
        refuse("the top level is not a JSON object")
    expected = copy.deepcopy(before)
    new = text
    for path, value in edits:
        try:
            new = _edit_once(new, tuple(path), value)
        except _Refuse as exc:
            refuse(str(exc))
        _apply_data(expected, tuple(path), value)
    try:
        after = parse(new)
    except JsoncError as exc:  # pragma: no cover - a bug in the splicer; refuse rather than write
        refuse(f"the edited text would not parse ({exc.what})")
    if after != expected:
        refuse("the edited text would not hold exactly your settings plus launch's")
    return new
