"""JSONC parsing and the comment-preserving key edit (launcher/jsonc.py)."""
from __future__ import annotations

import itertools
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from launcher import jsonc

LAUNCH_EDITS = [
    (("provider", "launcher", "npm"), "@ai-sdk/openai-compatible"),
    (("provider", "launcher", "options", "baseURL"), "http://127.0.0.1:8000/v1"),
    (("provider", "launcher", "models", "org/model"), {"limit": {"context": 1000, "output": 100}}),
    (("model",), "launcher/org/model"),
    (("small_model",), "launcher/org/model"),
]


def test_parse_comments_trailing_commas_and_lookalikes_in_strings():
    text = """// top
    {
      "a": "http://x//y", /* block
      comment */ "b": [1, 2, 3,],
      "c": {"d": "/* not a comment */",},  // trailing
    }
    """
    assert jsonc.parse(text) == {"a": "http://x//y", "b": [1, 2, 3], "c": {"d": "/* not a comment */"}}


def test_parse_error_names_file_line_and_column():
    with pytest.raises(jsonc.JsoncError) as exc:
        jsonc.parse('{\n  "a": 1\n  "b": 2\n}', where="/x/opencode.json")
    assert exc.value.where == "/x/opencode.json:3:3"


def test_edit_keeps_every_other_byte():
    text = ('// my settings\n{\n  "$schema": "https://opencode.ai/config.json", // schema\n'
            '  "provider": {\n    "other": {"npm": "x"}, /* keep me */\n  },\n  "theme": "dark"\n}\n')
    new = jsonc.set_keys(text, LAUNCH_EDITS, where="f.jsonc", block="B")
    for piece in ("// my settings", "// schema", '"other": {"npm": "x"}, /* keep me */', '"theme": "dark"'):
        assert piece in new
    data = jsonc.parse(new)
    assert data["provider"]["other"] == {"npm": "x"}
    assert data["provider"]["launcher"]["models"]["org/model"]["limit"]["output"] == 100
    assert data["model"] == data["small_model"] == "launcher/org/model"
    # a replacement of an existing value touches that value only
    again = jsonc.set_keys(new, [(("model",), "launcher/other")], where="f.jsonc", block="B")
    assert again == new.replace('"model": "launcher/org/model"', '"model": "launcher/other"')


def test_edit_is_idempotent():
    text = '{\n  // c\n  "a": 1\n}\n'
    once = jsonc.set_keys(text, LAUNCH_EDITS, where="f", block="B")
    assert jsonc.set_keys(once, LAUNCH_EDITS, where="f", block="B") == once


def test_empty_object_and_empty_file():
    assert jsonc.parse(jsonc.set_keys("{}", [(("a", "b"), 1)], where="f", block="B")) == {"a": {"b": 1}}
    assert jsonc.parse(jsonc.set_keys("", [(("a",), [1])], where="f", block="B")) == {"a": [1]}


@pytest.mark.parametrize("text, reason", [
    ("[1, 2]", "top level is not a JSON object"),
    ('{"provider": "oops"}', "'provider' is not an object"),
    ('{"provider": {"launcher": {"options": null}}}', "'provider.launcher.options' is not an object"),
    ('{"a": 1,, }', "does not parse"),
])
def test_refusal_names_the_file_and_carries_the_block(text, reason):
    with pytest.raises(jsonc.EditRefused) as exc:
        jsonc.set_keys(text, LAUNCH_EDITS, where="/home/u/.config/opencode/opencode.json", block='{"BLOCK": 1}')
    rendered = exc.value.render()
    assert "/home/u/.config/opencode/opencode.json" in rendered
    assert reason in rendered
    assert '{"BLOCK": 1}' in rendered


# ------------------------------------------------------------------ properties

keys = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=0, max_size=8)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                    st.floats(allow_nan=False, allow_infinity=False, width=32),
                    st.text(max_size=12))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(keys, inner, max_size=4)), max_leaves=12)


_ids = itertools.count()


def render_jsonc(value, data, depth: int = 0, at: tuple = ()) -> tuple[str, list[tuple[tuple, str]]]:
    """JSON text with comments and trailing commas sprinkled in (drawn by hypothesis); also returns
    each (unique) comment with the path of the container it sits in."""
    comments: list[tuple[tuple, str]] = []
    pad = "  " * (depth + 1)

    def comment() -> str:
        if not data.draw(st.booleans()):
            return ""
        n = next(_ids)
        c = f"// note {n};\n{pad}" if data.draw(st.booleans()) else f"/* c{n} */ "
        comments.append((at, c.strip()))
        return c

    if isinstance(value, dict):
        parts = []
        for k, v in value.items():
            inner, cs = render_jsonc(v, data, depth + 1, at + (k,))
            comments.extend(cs)
            parts.append(f"{comment()}{json.dumps(k)}: {inner}")
        if not parts:
            return "{" + comment() + "}", comments
        trail = "," if data.draw(st.booleans()) else ""
        return "{\n" + pad + (",\n" + pad).join(parts) + trail + "\n" + "  " * depth + comment() + "}", comments
    if isinstance(value, list):
        parts = []
        for i, v in enumerate(value):
            inner, cs = render_jsonc(v, data, depth + 1, at + (i,))
            comments.extend(cs)
            parts.append(comment() + inner)
        return "[" + ", ".join(parts) + "]", comments
    return json.dumps(value), comments


def _paths(value, prefix=()):
    if isinstance(value, dict) and value:
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    else:
        yield prefix, value


def _touched(path, edits) -> bool:
    return any(path[: len(p)] == p or p[: len(path)] == path for p, _ in edits)


existing_configs = st.fixed_dictionaries({}, optional={
    "provider": st.one_of(st.dictionaries(keys, values, max_size=3),
                          st.fixed_dictionaries({"launcher": st.dictionaries(keys, values, max_size=3)}),
                          values),
    "model": values, "theme": values, "$schema": st.text(max_size=10),
}).flatmap(lambda d: st.dictionaries(keys, values, max_size=3).map(lambda extra: {**extra, **d}))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(existing=existing_configs, data=st.data())
def test_random_configs_keep_every_foreign_key_and_comment(existing, data):
    text, comments = render_jsonc(existing, data)
    assert jsonc.parse(text) == existing  # the renderer itself is valid JSONC
    try:
        new = jsonc.set_keys(text, LAUNCH_EDITS, where="f.jsonc", block="B")
    except jsonc.EditRefused:
        # only when a key on launch's path holds something other than an object
        blocked = False
        for path, _ in LAUNCH_EDITS:
            cur = existing
            for k in path[:-1]:
                if k not in cur:
                    break
                cur = cur[k]
                if not isinstance(cur, dict):
                    blocked = True
                    break
        assert blocked
        return
    merged = jsonc.parse(new)
    for path, value in _paths(existing):
        if not path or _touched(path, LAUNCH_EDITS):
            continue
        cur = merged
        for k in path:
            cur = cur[k]
        assert cur == value, path
    for path, value in LAUNCH_EDITS:
        cur = merged
        for k in path:
            cur = cur[k]
        assert cur == value
    for where, c in comments:
        if any(where[: len(p)] == p for p, _ in LAUNCH_EDITS):
            continue  # inside a value launch replaces (one of its own keys)
        assert c in new
    assert jsonc.set_keys(new, LAUNCH_EDITS, where="f.jsonc", block="B") == new  # idempotent


@settings(max_examples=80, deadline=None)
@given(value=values, data=st.data())
def test_parse_agrees_with_json(value, data):
    compact = json.dumps(value, ensure_ascii=False)
    assert jsonc.parse(compact) == json.loads(compact)
    assert jsonc.parse(json.dumps(value, indent=3)) == value
    text, _ = render_jsonc(value, data)
    assert jsonc.parse(text) == value
