"""YAML loading that remembers where every key and value came from (file:line)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from launcher.errors import InputError

Loc = tuple[Any, ...]


@dataclass
class Source:
    """A loaded YAML document and the line of every path in it."""

    path: Path
    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)

    def line(self, loc: Loc) -> int:
        """The line of the deepest known prefix of loc (1-based)."""
        loc = tuple(loc)
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get((), 1)

    def where(self, loc: Loc = ()) -> str:
        return f"{self.path}:{self.line(loc)}"


def _build(node, loc: Loc, lines: dict[Loc, int], loader):
    import yaml

    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _build(key_node, loc + ("<key>",), {}, loader)
            sub = loc + (key,)
            lines[sub] = key_node.start_mark.line + 1
            out[key] = _build(value_node, sub, lines, loader)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, loc + (i,), lines, loader) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def load_yaml(path: Path) -> Source:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}", where=str(path),
                         fix="check the path and its permissions") from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise InputError(f"YAML syntax error: {problem}", where=f"{path}:{line}",
                         fix="fix the YAML syntax on that line (indentation, a missing ':' or quote)") from exc
    if node is None:
        raise InputError("the file is empty", where=f"{path}:1",
                         fix="write a YAML mapping; see the README's recipe reference")
    lines: dict[Loc, int] = {}
    loader = yaml.SafeLoader("")
    try:
        data = _build(node, (), lines, loader)
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise InputError("the file must hold a YAML mapping (key: value lines)", where=f"{path}:1",
                         fix="see the README's recipe and inventory reference")
    return Source(path=path, data=data, lines=lines)
