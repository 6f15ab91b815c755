"""Pure parts of the laptop engines: OLLAMA_HOST, the pull stream, names, LM Studio read-back,
llama-server /health, and the Ollama context choice."""
from __future__ import annotations

import pytest

from launcher.bringup import ollama_context
from launcher.engines import llamacpp as lc
from launcher.engines import lmstudio as lms
from launcher.engines import ollama as ol
from launcher.errors import InputError

GIB = 1024 ** 3


@pytest.mark.parametrize("value,url", [
    (None, None), ("", None), ("0.0.0.0", "http://127.0.0.1:11434"), ("127.0.0.1:9999", "http://127.0.0.1:9999"),
    ("http://box.lan:8080", "http://box.lan:8080"), (":4000", "http://127.0.0.1:4000"),
    ("localhost", "http://127.0.0.1:11434"), ("[::1]:5000", "http://[::1]:5000"),
    ("https://ollama.example.com", "https://ollama.example.com:443"),
])
def test_url_from_ollama_host(value, url):
    assert ol.url_from_ollama_host(value) == url


def test_pull_state_sums_layers_and_tolerates_missing_completed():
    s = ol.PullState()
    s.feed({"status": "pulling manifest"})
    s.feed({"status": "pulling aaa", "digest": "sha256:a", "total": 1000})  # no completed yet
    assert s.total == 1000 and s.completed == 0 and s.percent == 0.0
    s.feed({"status": "pulling aaa", "digest": "sha256:a", "total": 1000, "completed": 500})
    s.feed({"status": "pulling bbb", "digest": "sha256:b", "total": 1000})
    assert s.completed == 500 and s.percent == 25.0
    s.feed({"status": "pulling bbb", "digest": "sha256:b", "total": 1000, "completed": 1000})
    s.feed({"status": "success"})
    assert s.success and s.percent == 75.0 and s.error is None
    s.feed({"error": "pull model manifest: file does not exist"})
    assert s.error == "pull model manifest: file does not exist" and ol.missing_model_error(s.error)


@pytest.mark.parametrize("model,ctx,name", [
    ("qwen3-coder:30b", 65536, "qwen3-coder:30b-64k"), ("llama3", 32768, "llama3:32k"),
    ("hf.co/unsloth/Qwen3-GGUF:Q4_K_M", 131072, "hf.co/unsloth/Qwen3-GGUF:Q4_K_M-128k"),
    ("m:1b", 50000, "m:1b-ctx50000"),
])
def test_derived_name(model, ctx, name):
    assert ol.derived_name(model, ctx) == name


def test_names_and_parameters_and_capabilities():
    assert ol.same_model("llama3", "llama3:latest") and not ol.same_model("llama3:8b", "llama3")
    assert ol.tags_entry({"models": [{"name": "llama3:latest", "size": 5}]}, "llama3") == {"name": "llama3:latest", "size": 5}
    assert ol.parse_parameters('num_ctx                        2048\nstop "<|im_end|>"\nstop "<|x|>"') == {
        "num_ctx": ["2048"], "stop": ["<|im_end|>", "<|x|>"]}
    assert ol.capabilities({"capabilities": ["completion", "tools"]}) == ["completion", "tools"]
    assert ol.capabilities({}) is None  # an old server: cannot tell


def test_low_context_warning_explains_why():
    assert ol.low_context_warning(65536) is None
    w = ol.low_context_warning(4096)
    assert "4096" in w and "tool schemas" in w.lower() and "silently breaks tool calls" in w


def test_lmstudio_loaded_v1_and_v0():
    v1 = {"models": [{"key": "a/b", "max_context_length": 131072, "capabilities": {"trained_for_tool_use": True},
                      "loaded_instances": [{"id": "a/b", "config": {"context_length": 32768}}]},
                     {"key": "c/d", "loaded_instances": []}]}
    assert lms.loaded(v1, "a/b") == ("a/b", 32768) and lms.loaded(v1, "c/d") is None
    assert lms.trained_for_tools(lms.find_model(v1, "a/b")) is True and lms.max_context(lms.find_model(v1, "a/b")) == 131072
    v0 = {"data": [{"id": "a/b", "state": "not-loaded", "max_context_length": 131072},
                   {"id": "a/b", "state": "loaded", "loaded_context_length": 8192}]}
    assert lms.loaded(v0, "a/b") == ("a/b", 8192)
    assert lms.find_model(v0, "a/b")["state"] == "loaded"
    assert lms.load_argv("a/b", 8192, gpu="max") == ["lms", "load", "a/b", "--yes", "--context-length", "8192",
                                                     "--gpu", "max"]


@pytest.mark.parametrize("status,body,state", [
    (200, {"status": "ok"}, "ready"),
    (503, {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}, "loading"),
    (500, {"error": {"code": 500, "message": "failed to load model"}}, "error"),
    (404, None, "error"),
])
def test_llama_health_state(status, body, state):
    assert lc.health_state(status, body)[0] == state


def test_llama_attach_ports_and_argv_has_no_key():
    assert lc.ATTACH_PORTS == (8080, 9931)
    assert lc.ENGINE.api_key_env == "LLAMA_API_KEY"


# ------------------------------------------------------------------------ Ollama context choice

SHOW = {"model_info": {"general.architecture": "qwen3moe", "qwen3moe.block_count": 48,
                       "qwen3moe.attention.head_count": 32, "qwen3moe.attention.head_count_kv": 4,
                       "qwen3moe.attention.key_length": 128, "qwen3moe.attention.value_length": 128,
                       "qwen3moe.embedding_length": 2048, "qwen3moe.context_length": 262144}}
W = 18556701210  # qwen3-coder:30b weights


def test_auto_context_fits_memory():
    c = ollama_context.choose("auto", show=SHOW, weights=W, free=32 * GIB, free_how="test", parallel=1,
                              kv_type=None, where="r.yaml")
    assert c.num_ctx == 139264
    q8 = ollama_context.choose("auto", show=SHOW, weights=W, free=32 * GIB, free_how="test", parallel=1,
                               kv_type="q8_0", where="r.yaml")
    assert q8.num_ctx == 262144  # half the bytes per token: the trained length now fits


def test_numeric_context_too_large_names_the_fix():
    with pytest.raises(InputError) as e:
        ollama_context.choose(262144, show=SHOW, weights=W, free=24 * GIB, free_how="test", parallel=1,
                              kv_type=None, where="r.yaml: ollama.context")
    assert e.value.where == "r.yaml: ollama.context" and "lower ollama.context to" in e.value.fix


def test_weights_alone_do_not_fit():
    with pytest.raises(InputError) as e:
        ollama_context.choose("auto", show=SHOW, weights=W, free=16 * GIB, free_how="test", parallel=1,
                              kv_type=None, where="r.yaml")
    assert "leaving no room" in e.value.what


def test_unknown_shape_falls_back_with_a_warning():
    c = ollama_context.choose("auto", show={}, weights=W, free=64 * GIB, free_how="test", parallel=1,
                              kv_type=None, where="r.yaml")
    assert c.num_ctx == ollama_context.AUTO_FALLBACK and c.warnings


def test_lms_ps_json_read_back():
    from launcher.engines.lmstudio import loaded_from_ps

    items = [{"identifier": "coder", "modelKey": "qwen/qwen3-coder-30b", "contextLength": 32768},
             {"identifier": "g", "modelKey": "google/gemma-3-4b"}]  # no contextLength: not usable
    assert loaded_from_ps(items, "qwen/qwen3-coder-30b") == ("coder", 32768)
    assert loaded_from_ps(items, "coder") == ("coder", 32768)
    assert loaded_from_ps(items, "google/gemma-3-4b") is None
    assert loaded_from_ps({"not": "a list"}, "coder") is None


def test_fit_asks_the_ollama_the_recipe_would_use():
    from types import SimpleNamespace

    from launcher.fit_ollama import ollama_url

    assert ollama_url(SimpleNamespace(port=None), {}) == "http://127.0.0.1:11434"
    assert ollama_url(SimpleNamespace(port=None), {"OLLAMA_HOST": "0.0.0.0:9999"}) == "http://127.0.0.1:9999"
    assert ollama_url(SimpleNamespace(port=7777), {"OLLAMA_HOST": "0.0.0.0:9999"}) == "http://127.0.0.1:7777"
