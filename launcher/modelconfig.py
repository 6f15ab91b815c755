"""Read a model's shape (ModelShape) from what is on this machine, offline.

Sources: a Hugging Face config.json (the local HF cache, ``~/.cache/huggingface/hub/
models--ORG--NAME/snapshots/*/config.json``, or a given path), GGUF metadata (a small reader of the
header; no tensors are read), and Ollama's ``/api/show`` ``model_info``. Nothing here downloads.
"""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any, BinaryIO

from launcher.errors import InputError
from launcher.spec.shape import MambaShape, MlaShape, ModelShape

GIB = 1024 ** 3

# ---------------------------------------------------------------- Hugging Face config.json


def hf_hub_dir(hf_cache: str | os.PathLike | None = None) -> Path:
    """The hub cache: HF_HUB_CACHE, HF_HOME/hub, else <hf_cache or ~/.cache/huggingface>/hub."""
    if hf_cache is None:
        if os.environ.get("HF_HUB_CACHE"):
            return Path(os.environ["HF_HUB_CACHE"]).expanduser()
        if os.environ.get("HF_HOME"):
            return Path(os.environ["HF_HOME"]).expanduser() / "hub"
        hf_cache = "~/.cache/huggingface"
    return Path(hf_cache).expanduser() / "hub"


def find_hf_config(model: str, hf_cache: str | os.PathLike | None = None) -> Path | None:
    """config.json of ``ORG/NAME`` in the local HF cache (newest snapshot), or None."""
    if "/" not in model:
        return None
    repo = hf_hub_dir(hf_cache) / ("models--" + model.replace("/", "--"))
    found = sorted(repo.glob("snapshots/*/config.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    return found[0] if found else None


def load_json(path: str | os.PathLike) -> dict:
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / "config.json"
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        raise InputError(f"model config {p} does not exist", where=str(p),
                         fix="give a config.json (or its folder) or a .gguf file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"model config {p} is not valid JSON: {exc}", where=str(p),
                         fix="point --config at the model's config.json") from None


def weights_gib_near(config_path: str | os.PathLike) -> float | None:
    """Checkpoint size beside a config.json: the safetensors index's total_size, else the sum of
    *.safetensors files present (symlinks into the blob store are followed)."""
    d = Path(config_path).expanduser()
    d = d if d.is_dir() else d.parent
    index = d / "model.safetensors.index.json"
    if index.is_file():
        try:
            total = json.loads(index.read_text()).get("metadata", {}).get("total_size")
            if total:
                return float(total) / GIB
        except (json.JSONDecodeError, OSError):
            pass
    files = [p for p in d.glob("*.safetensors") if p.exists()]
    if files:
        return sum(p.stat().st_size for p in files) / GIB
    return None


def _text_config(cfg: dict) -> dict:
    """Multimodal configs nest the language model (Gemma 3, Llama 4, Mistral 3)."""
    for key in ("text_config", "llm_config", "language_config"):
        if isinstance(cfg.get(key), dict):
            merged = {k: v for k, v in cfg.items() if not isinstance(v, dict)}
            merged.update(cfg[key])
            return merged
    return cfg


def shape_from_hf_config(cfg: dict[str, Any], *, weights_gib: float | None = None) -> ModelShape:
    """ModelShape from a config.json dict: GQA/MHA, MLA (kv_lora_rank), sliding windows
    (layer_types or sliding_window_pattern), hybrids (hybrid_override_pattern, layer_types with mamba)."""
    c = _text_config(cfg)
    layers = int(c.get("num_hidden_layers") or c.get("n_layer") or c.get("num_layers"))
    heads = int(c.get("num_attention_heads") or c.get("n_head") or 1)
    kv_heads = int(c.get("num_key_value_heads") or heads)
    head_dim = int(c.get("head_dim") or (int(c["hidden_size"]) // heads))
    arch = (c.get("architectures") or cfg.get("architectures") or [None])[0] or c.get("model_type")
    trained = c.get("max_position_embeddings") or c.get("max_sequence_length") or c.get("seq_length")
    attention_layers = layers
    sliding_layers = 0
    window = c.get("sliding_window") if c.get("use_sliding_window", True) is not False else None
    mla = None
    mamba = None
    v_head_dim = None

    types = c.get("layer_types")
    pattern = c.get("hybrid_override_pattern")
    if isinstance(pattern, str) and pattern:
        attention_layers = pattern.count("*")
        n_mamba = pattern.count("M")
        if n_mamba:
            mamba = _mamba(c, n_mamba)
    elif isinstance(types, list) and types:
        kinds = [str(t).lower() for t in types]
        n_sliding = sum(1 for t in kinds if "sliding" in t)
        n_full = sum(1 for t in kinds if t in ("full_attention", "attention", "global", "full"))
        n_mamba = sum(1 for t in kinds if "mamba" in t)
        attention_layers = n_full + n_sliding
        sliding_layers = n_sliding if window else 0
        if n_mamba:
            mamba = _mamba(c, n_mamba)
    elif window and c.get("sliding_window_pattern"):
        every = int(c["sliding_window_pattern"])  # Gemma 3: 6 = 5 local then 1 global
        sliding_layers = layers - layers // every
    elif window and c.get("model_type") in ("mistral",) and window < (trained or 0):
        sliding_layers = layers  # old Mistral: every layer windowed
    if c.get("kv_lora_rank"):
        mla = MlaShape(kv_lora_rank=int(c["kv_lora_rank"]), qk_rope_head_dim=int(c.get("qk_rope_head_dim") or 0))
        head_dim = int(c.get("qk_nope_head_dim") or 0) + int(c.get("qk_rope_head_dim") or 0) or head_dim
        v_head_dim = c.get("v_head_dim")
    return ModelShape(
        architecture=arch, layers=layers,
        attention_layers=attention_layers if attention_layers != layers else None,
        kv_heads=kv_heads, head_dim=head_dim, v_head_dim=v_head_dim,
        sliding_window=int(window) if window and sliding_layers else None,
        sliding_layers=sliding_layers, mla=mla, mamba=mamba,
        trained_context=int(trained) if trained else None, weights_gib=weights_gib)


def _mamba(c: dict, n_layers: int) -> MambaShape:
    heads = int(c.get("mamba_num_heads") or c.get("mamba_n_heads") or 1)
    expand_dim = int(c.get("mamba_expand", 2)) * int(c.get("hidden_size", 0))
    head_dim = int(c.get("mamba_head_dim") or c.get("mamba_d_head") or max(1, expand_dim // heads))
    return MambaShape(layers=n_layers, heads=heads, head_dim=head_dim,
                      state_size=int(c.get("ssm_state_size") or c.get("mamba_d_state") or 128),
                      n_groups=int(c.get("n_groups") or c.get("mamba_n_groups") or 1),
                      conv_kernel=int(c.get("conv_kernel") or c.get("mamba_d_conv") or 4))


def shape_from_config_path(path: str | os.PathLike) -> ModelShape:
    """A config.json, its folder, or a .gguf file."""
    p = Path(path).expanduser()
    if p.suffix == ".gguf":
        return shape_from_gguf(p)
    return shape_from_hf_config(load_json(p), weights_gib=weights_gib_near(p))


# ---------------------------------------------------------------- GGUF metadata

_GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


def _read(f: BinaryIO, fmt: str):
    size = struct.calcsize(fmt)
    data = f.read(size)
    if len(data) != size:
        raise EOFError("truncated GGUF header")
    return struct.unpack(fmt, data)[0]


def _read_value(f: BinaryIO, vtype: int, *, keep_arrays: bool = True):
    if vtype in _GGUF_SCALARS:
        return _read(f, _GGUF_SCALARS[vtype])
    if vtype == _STRING:
        n = _read(f, "<Q")
        return f.read(n).decode("utf-8", "replace")
    if vtype == _ARRAY:
        etype, n = _read(f, "<I"), _read(f, "<Q")
        if etype in _GGUF_SCALARS and (not keep_arrays or n > 4096):
            f.seek(struct.calcsize(_GGUF_SCALARS[etype]) * n, 1)  # skip long arrays (tokenizer)
            return None
        return [_read_value(f, etype, keep_arrays=False if n > 4096 else keep_arrays) for _ in range(n)]
    raise ValueError(f"unknown GGUF value type {vtype}")


def read_gguf_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The key/value metadata of a GGUF file (long numeric arrays such as the vocabulary are skipped)."""
    p = Path(path).expanduser()
    try:
        with open(p, "rb") as f:
            if f.read(4) != b"GGUF":
                raise InputError(f"{p} is not a GGUF file", where=str(p), fix="give a .gguf model file")
            version = _read(f, "<I")
            if version < 2:
                raise InputError(f"{p}: GGUF version {version} is too old to read", where=str(p),
                                 fix="convert the model with a current llama.cpp")
            _tensors, n_kv = _read(f, "<Q"), _read(f, "<Q")
            out: dict[str, Any] = {}
            for _ in range(n_kv):
                key = _read_value(f, _STRING)
                vtype = _read(f, "<I")
                out[key] = _read_value(f, vtype, keep_arrays=not key.startswith("tokenizer."))
            return out
    except FileNotFoundError:
        raise InputError(f"GGUF file {p} does not exist", where=str(p),
                         fix="check the path (llamacpp.gguf in the recipe)") from None
    except (EOFError, ValueError, struct.error) as exc:
        raise InputError(f"{p}: cannot read GGUF metadata ({exc})", where=str(p),
                         fix="check the file is a complete GGUF download") from None


def shape_from_gguf_metadata(md: dict[str, Any], *, weights_gib: float | None = None) -> ModelShape:
    """GGUF metadata and Ollama's model_info use the same keys: ``<arch>.block_count``,
    ``<arch>.attention.head_count(_kv)`` (a number or a per-layer list; 0 = recurrent layer),
    ``key_length``/``value_length``, ``sliding_window``, ``ssm.*``, ``context_length``."""
    arch = md.get("general.architecture") or "llama"

    def g(key, default=None):
        return md.get(f"{arch}.{key}", default)

    layers = int(g("block_count"))
    for key in ("attention.head_count", "attention.head_count_kv"):
        if g(key) == []:  # Ollama's /api/show without "verbose" elides arrays longer than 5 as []
            raise InputError(f"model_info {arch}.{key} is an empty list (an elided per-layer array): the "
                             f"attention shape is unknown", where="/api/show model_info",
                             fix='ask /api/show with "verbose": true, or give the shape in the recipe')
    heads = g("attention.head_count", 1)
    heads = max(heads) if isinstance(heads, list) else int(heads)
    kv = g("attention.head_count_kv", heads)
    if isinstance(kv, list):
        attn = [int(x) for x in kv if int(x) > 0]
        attention_layers, kv_heads = len(attn), (max(attn) if attn else 1)
    else:
        attention_layers, kv_heads = layers, int(kv)
    embd = int(g("embedding_length", 0) or 0)
    key_len = int(g("attention.key_length", 0) or (embd // heads if heads else 0) or 128)
    val_len = int(g("attention.value_length", 0) or key_len)
    window = g("attention.sliding_window")
    sliding_layers = 0
    pattern = g("attention.sliding_window_pattern")
    if window and isinstance(pattern, list):
        sliding_layers = sum(1 for x in pattern if x)
    elif window and arch.startswith("gemma3"):
        sliding_layers = layers - layers // 6
    elif window and arch == "gpt-oss":
        sliding_layers = attention_layers // 2
    mla = None
    if g("attention.kv_lora_rank"):
        mla = MlaShape(kv_lora_rank=int(g("attention.kv_lora_rank")), qk_rope_head_dim=int(g("rope.dimension_count", 64)))
    mamba = None
    if g("ssm.state_size"):
        inner = int(g("ssm.inner_size", 0) or 0)
        n_heads = int(g("ssm.time_step_rank", 0) or 1)
        n_mamba = layers - attention_layers if attention_layers < layers else layers
        mamba = MambaShape(layers=n_mamba, heads=n_heads, head_dim=max(1, inner // n_heads),
                           state_size=int(g("ssm.state_size")), n_groups=int(g("ssm.group_count", 1) or 1),
                           conv_kernel=int(g("ssm.conv_kernel", 4) or 4))
    trained = g("context_length")
    return ModelShape(architecture=arch, layers=layers,
                      attention_layers=attention_layers if attention_layers != layers else None,
                      kv_heads=kv_heads, head_dim=key_len, v_head_dim=val_len if val_len != key_len else None,
                      sliding_window=int(window) if window and sliding_layers else None,
                      sliding_layers=sliding_layers if window else 0, mla=mla, mamba=mamba,
                      trained_context=int(trained) if trained else None, weights_gib=weights_gib)


def shape_from_gguf(path: str | os.PathLike) -> ModelShape:
    p = Path(path).expanduser()
    return shape_from_gguf_metadata(read_gguf_metadata(p), weights_gib=p.stat().st_size / GIB)


def shape_from_ollama_show(show: dict[str, Any], *, weights_gib: float | None = None) -> ModelShape:
    """Ollama ``POST /api/show`` answer -> ModelShape (its model_info carries GGUF keys)."""
    info = show.get("model_info") or {}
    if not info:
        raise InputError("Ollama's /api/show answer has no model_info", where="/api/show",
                         fix="update Ollama, or give the model's shape in the recipe")
    return shape_from_gguf_metadata(info, weights_gib=weights_gib)


# ---------------------------------------------------------------- comparing shapes

COMPARED = ("layers", "attention_layers", "kv_heads", "head_dim", "sliding_window", "sliding_layers",
            "trained_context")


def disagreements(recipe_shape: ModelShape, found: ModelShape) -> list[str]:
    """Fields where the recipe's shape and a locally found config differ ("kv_heads: recipe 8, config 2")."""
    out = []
    for name in COMPARED:
        a, b = getattr(recipe_shape, name), getattr(found, name)
        if name == "attention_layers":
            a, b = a or recipe_shape.layers, b or found.layers
        if a is not None and b is not None and a != b:
            out.append(f"{name}: recipe {a}, config {b}")
    for name in ("mla", "mamba"):
        a, b = getattr(recipe_shape, name), getattr(found, name)
        if (a is None) != (b is None) or (a is not None and a.model_dump() != b.model_dump()):
            out.append(f"{name}: recipe {a.model_dump() if a else None}, config {b.model_dump() if b else None}")
    return out
