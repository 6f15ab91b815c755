"""Find recipes and inventories by name or path, load and validate them.

Search order for a name: ./recipes (./hosts) of the current directory, the user's config dir,
then the ones shipped with the package. Every problem in a file is reported at once, each with
file:line, the field and the fix.
"""
from __future__ import annotations

import difflib
import os
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from launcher.errors import InputError, LauncherError, SpecError
from launcher.spec.yamlsrc import Source, load_yaml

KINDS = {"recipe": "recipes", "inventory": "hosts"}


def search_dirs(kind: str) -> list[Path]:
    from launcher.paths import config_dir, shipped_dir

    sub = KINDS[kind]
    out: list[Path] = []
    for d in (Path.cwd() / sub, config_dir() / sub, shipped_dir() / sub):
        if d.resolve() not in [o.resolve() for o in out]:
            out.append(d)
    return out


def _is_path(ref: str) -> bool:
    return ref.endswith((".yaml", ".yml")) or os.sep in ref or ref.startswith(".")


def find(kind: str, ref: str, *, relative_to: Path | None = None) -> Path:
    """Resolve a name or a path to a YAML file."""
    if _is_path(ref):
        p = Path(ref).expanduser()
        if not p.is_absolute() and relative_to is not None and not p.exists():
            p = relative_to / p
        if p.is_file():
            return p
        raise InputError(f"{kind} file {ref} does not exist", where=str(p),
                         fix=f"check the path, or give a {kind} name (see `launch recipes`)")
    for d in search_dirs(kind):
        for ext in (".yaml", ".yml"):
            p = d / f"{ref}{ext}"
            if p.is_file():
                return p
    names = sorted(available(kind))
    close = difflib.get_close_matches(ref, names, n=1) or \
        [n for n in names if ref.startswith(n) or n.startswith(ref)][:1]
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise InputError(
        f"no {kind} named '{ref}'",
        where=", ".join(str(d) for d in search_dirs(kind)),
        fix=f"{hint}known {KINDS[kind]}: {', '.join(names) or 'none'}; or give a path to a YAML file")


def available(kind: str) -> dict[str, Path]:
    """name -> path, earlier search dirs winning."""
    found: dict[str, Path] = {}
    for d in search_dirs(kind):
        if not d.is_dir():
            continue
        for p in sorted(d.iterdir()):
            if p.suffix in (".yaml", ".yml") and p.stem not in found:
                found[p.stem] = p
    return found


# ---------------------------------------------------------------- validation


def _fields_at(model_cls, loc: tuple) -> list[str]:
    """Field names of the model reached by following loc from model_cls (through dicts and lists)."""
    from pydantic import BaseModel

    ann = model_cls
    for part in loc:
        origin = typing.get_origin(ann)
        if origin is dict:
            ann = typing.get_args(ann)[1]
            continue
        if origin is list:
            ann = typing.get_args(ann)[0]
            continue
        cls = _model_in(ann)
        field = cls.model_fields.get(part) if (cls is not None and isinstance(part, str)) else None
        if field is None:
            return []
        ann = field.annotation
    cls = _model_in(ann)
    return list(cls.model_fields) if cls is not None and issubclass(cls, BaseModel) else []


def _model_in(annotation):
    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (dict, list):
        return None
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _clean_loc(loc: tuple) -> tuple:
    # pydantic adds type tags for unions/literals, e.g. ('max_model_len', 'int') — drop them
    return tuple(p for p in loc if not (isinstance(p, str) and (p in {"int", "str", "float", "bool"}
                                                               or p.startswith(("literal[", "function-")))))


def _problem(src: Source, model_cls, err: dict) -> LauncherError:
    loc = _clean_loc(tuple(err["loc"]))
    field = ".".join(str(p) for p in loc) or "(top level)"
    etype = err["type"]
    msg = err["msg"].removeprefix("Value error, ")
    fix = None
    if etype == "extra_forbidden":
        key = loc[-1]
        valid = _fields_at(model_cls, loc[:-1])
        close = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.6)
        parent = ".".join(str(p) for p in loc[:-1]) or "(top level)"
        what = f"{parent}: unknown key '{key}'"
        fix = (f"did you mean '{close[0]}'? " if close else "") + \
              (f"valid keys here: {', '.join(valid)}" if valid else "remove it")
        return InputError(what, where=src.where(loc), fix=fix)
    if etype == "missing":
        fix = f"add `{loc[-1]}:`; see the README's reference"
    elif etype.startswith("literal_error"):
        fix = msg.replace("Input should be", "use")
        msg = f"'{err.get('input')}' is not allowed"
    elif etype in {"int_parsing", "int_type", "float_parsing", "float_type", "bool_parsing", "bool_type",
                   "string_type", "dict_type", "list_type", "model_type"}:
        fix = f"write a value of the right type ({msg.replace('Input should be ', '')})"
        msg = f"wrong type: {err.get('input')!r}"
    elif "; " in msg:  # our validators write "what; what to do"
        msg, fix = msg.split("; ", 1)
    else:
        fix = "correct the value (see the README's reference)"
    return InputError(f"{field}: {msg}", where=src.where(loc), fix=fix)


def validate(src: Source, model_cls):
    from pydantic import ValidationError

    try:
        return model_cls.model_validate(src.data)
    except ValidationError as exc:
        raise SpecError(_problems(src, model_cls, exc.errors())) from None


def _problems(src: Source, model_cls, errors: list[dict]) -> list[LauncherError]:
    """One problem per field: a union (int | 'auto') fails once per member; say it once."""
    by_loc: dict[tuple, list[dict]] = {}
    for e in errors:
        by_loc.setdefault(_clean_loc(tuple(e["loc"])), []).append(e)
    out = []
    for loc, errs in by_loc.items():
        # a union (str | {env: NAME}) whose member validator said why: that reason, not "wrong type" twice
        reasons = [e for e in errs if e["type"] == "value_error"]
        if len(errs) > 1 and reasons:
            errs = reasons[:1]
        if len(errs) == 1 or any(e["type"] in ("extra_forbidden", "missing") for e in errs):
            out += [_problem(src, model_cls, e) for e in errs]
            continue
        field = ".".join(str(p) for p in loc)
        wants = []
        for e in errs:
            m = e["msg"].removeprefix("Input should be ").split(",")[0]
            wants.append(m)
        out.append(InputError(f"{field}: {errs[0].get('input')!r} is not valid", where=src.where(loc),
                              fix="write " + " or ".join(dict.fromkeys(wants))))
    return out


@dataclass
class Loaded:
    """A validated spec with its source, so later checks can point at file:line."""

    spec: Any
    source: Source

    def where(self, *loc) -> str:
        return self.source.where(tuple(loc))


HF_TOKEN_NAMES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_TOKEN")


def _inline_secret(loaded: Loaded, name: str, value: str) -> LauncherError:
    what = (f"env.{name}: looks like a secret written inline (it would be stored in the recipe, "
            "shown by `launch plan` and copied into configs)")
    if name.upper() in HF_TOKEN_NAMES or value.startswith("hf_"):
        # not the server's API key: vLLM reads HF_TOKEN to download gated weights from the Hub
        fix = (f"remove it from env:. vLLM uses {name} only to download gated weights from the Hugging "
               f"Face Hub: download them once on each host beforehand (`huggingface-cli download "
               f"{loaded.spec.model}`, with the token in that shell), or reference it so the server gets it "
               f"through its environment: `env: {{{name}: {{env: {name}}}}}` (or file: / command:); do not make "
               "it the server's api_key")
    else:
        fix = (f"reference it instead of writing it: `env: {{{name}: {{env: {name}}}}}` (or file: PATH / "
               f"command: \"…\"); if it is the server's API key, use `api_key: {{env: {name}}}`; either way "
               "launch passes it through the environment, never the command line")
    return InputError(what, where=loaded.where("env", name), fix=fix)


def _managed_extra_args(loaded: Loaded, extra_args: list[str]) -> list[LauncherError]:
    """extra_args may not set what launch sets: a second --port or --served-model-name would leave the
    readiness probe watching the wrong port or name until it times out."""
    from launcher.spec.vllm_parsers import MANAGED_FLAGS, managed_flag

    out: list[LauncherError] = []
    for i, arg in enumerate(extra_args):
        flag = managed_flag(arg)
        if flag is None:
            continue
        if flag == "--api-key":
            out.append(InputError(
                "vllm.extra_args passes --api-key: the key would be visible in `ps` to every user",
                where=loaded.where("vllm", "extra_args", i),
                fix="remove it and set `api_key: {env: VLLM_API_KEY}`; launch passes it through the environment"))
            continue
        value = "" if "=" in arg else " (and its value)"
        out.append(InputError(
            f"vllm.extra_args sets {flag}, which launch writes itself from the recipe (a second value "
            "would override the plan's: readiness, the agent config and the plan hash would follow a "
            "server that is not the one running)",
            where=loaded.where("vllm", "extra_args", i),
            fix=f"remove {arg!r}{value} from extra_args; {MANAGED_FLAGS[flag]}"))
    return out


def _semantic_recipe(loaded: Loaded) -> None:
    """Checks beyond the schema: parser names vLLM knows."""
    from launcher.spec.vllm_parsers import KV_CACHE_DTYPES, REASONING_PARSERS, TOOL_CALL_PARSERS

    import re

    r = loaded.spec
    problems: list[LauncherError] = []
    for name, value in r.plain_env.items():
        if re.search(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", name, re.I) or \
                re.match(r"^(sk-|hf_|ghp_|xox[bp]-|eyJ)[A-Za-z0-9_.-]{8,}", value):
            problems.append(_inline_secret(loaded, name, value))
    if r.engine == "vllm" and r.vllm:
        v = r.vllm
        if v.tool_call_parser and v.tool_call_parser not in TOOL_CALL_PARSERS and not v.tool_parser_plugin:
            close = difflib.get_close_matches(v.tool_call_parser, sorted(TOOL_CALL_PARSERS), n=1)
            problems.append(InputError(
                f"vllm.tool_call_parser: '{v.tool_call_parser}' is not a tool-call parser vLLM knows "
                "(vLLM would fail with `invalid tool call parser` after loading the weights)",
                where=loaded.where("vllm", "tool_call_parser"),
                fix=(f"did you mean '{close[0]}'? " if close else "") +
                    "pick the model's parser from vLLM's list (e.g. qwen3_coder, hermes, llama3_json), or load "
                    "your own with vllm.tool_parser_plugin: PATH.py"))
        if v.kv_cache_dtype and v.kv_cache_dtype not in KV_CACHE_DTYPES:
            aliases = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "f16": "float16"}
            close = [aliases[v.kv_cache_dtype.lower()]] if v.kv_cache_dtype.lower() in aliases else \
                difflib.get_close_matches(v.kv_cache_dtype.lower().replace("-", "_"), sorted(KV_CACHE_DTYPES), n=1)
            problems.append(InputError(
                f"vllm.kv_cache_dtype: '{v.kv_cache_dtype}' is not a KV cache dtype vLLM knows",
                where=loaded.where("vllm", "kv_cache_dtype"),
                fix=(f"did you mean '{close[0]}'? " if close else "") +
                    "use one of " + ", ".join(sorted(KV_CACHE_DTYPES))))
        if (v.reasoning_parser and v.reasoning_parser not in REASONING_PARSERS
                and not v.reasoning_parser_plugin):
            close = difflib.get_close_matches(v.reasoning_parser, sorted(REASONING_PARSERS), n=1)
            problems.append(InputError(
                f"vllm.reasoning_parser: '{v.reasoning_parser}' is not a reasoning parser vLLM knows",
                where=loaded.where("vllm", "reasoning_parser"),
                fix=(f"did you mean '{close[0]}'? " if close else "") +
                    "pick one of vLLM's (e.g. nemotron_v3, qwen3, deepseek_r1), or load a plugin "
                    "with vllm.reasoning_parser_plugin"))
        if v.tool_call_parser and not v.enable_auto_tool_choice:
            problems.append(InputError(
                "vllm.tool_call_parser is set but enable_auto_tool_choice is false: vLLM answers "
                "HTTP 400 to every `tool_choice: auto` request (what agents send)",
                where=loaded.where("vllm", "tool_call_parser"),
                fix="add `enable_auto_tool_choice: true` under vllm:"))
        if v.enable_auto_tool_choice and not v.tool_call_parser:
            problems.append(InputError(
                "vllm.enable_auto_tool_choice needs a tool_call_parser",
                where=loaded.where("vllm", "enable_auto_tool_choice"),
                fix="add the model's `tool_call_parser:` (e.g. qwen3_coder)"))
        problems += _managed_extra_args(loaded, v.extra_args)
        par = r.parallelism
        if par.nodes > 1 and (par.tensor < par.nodes or par.tensor % par.nodes):
            problems.append(InputError(
                f"parallelism.tensor is {par.tensor} over {par.nodes} nodes: every node must hold the same "
                "number of tensor-parallel ranks (at least one), or vLLM refuses to start (mp) or leaves a "
                "node idle (ray)",
                where=loaded.where("parallelism", "tensor"),
                fix=f"set parallelism.tensor to a multiple of {par.nodes} (e.g. {par.nodes} for one GPU per "
                    "node), or parallelism.nodes: 1"))
    if r.runtime == "docker" and not r.image and r.engine == "vllm":
        problems.append(InputError("runtime docker needs an image", where=loaded.where("runtime"),
                                   fix="add e.g. `image: vllm/vllm-openai:latest`"))
    if r.engine != "openai" and not r.hosts and r.runtime != "local":
        problems.append(InputError(f"runtime {r.runtime} needs `hosts:` (an inventory name)",
                                   where=loaded.where("runtime"), fix="add `hosts: NAME` (see hosts/)"))
    if problems:
        raise SpecError(problems)


def load_recipe(ref: str) -> Loaded:
    from launcher.spec.recipe import Recipe

    path = find("recipe", ref)
    src = load_yaml(path)
    loaded = Loaded(validate(src, Recipe), src)
    _semantic_recipe(loaded)
    return loaded


def load_inventory(ref: str, *, relative_to: Path | None = None) -> Loaded:
    from launcher.spec.inventory import Inventory

    path = find("inventory", ref, relative_to=relative_to)
    src = load_yaml(path)
    return Loaded(validate(src, Inventory), src)


def local_inventory():
    """The implicit inventory for recipes without `hosts:`: this machine."""
    from launcher.spec.inventory import Host, Inventory

    return Inventory(name="local", hosts={"local": Host(address="127.0.0.1")})
