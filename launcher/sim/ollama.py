"""A simulated Ollama server, built from the documented API (docs/api.md) and the facts in
../shared/reference/laptop-engines.md. In-process: `OllamaSim(...).start()`, `.url`, `.requests`, `.stop()`.

What it stands for:
- /api/version, /api/tags, /api/show (parameters text, capabilities, model_info: arrays longer than 5
  elided to [] unless the request says "verbose": true, as real Ollama does), /api/ps (with
  `context_length`, as since 0.9.7; `ps_context=False` acts like an older server).
- /api/pull streams NDJSON: "pulling manifest", per-layer lines with digest/total and `completed`
  (missing on a layer's first line), "verifying sha256 digest", "writing manifest", "success"; an
  unknown name streams `{"error":"pull model manifest: file does not exist"}`.
- /api/create {model, from, parameters} streams status lines to "success".
- /api/generate with no prompt loads the model (done_reason "load"); keep_alive 0 unloads it.
  The context allocated is the model's num_ctx (default `default_ctx`), stepped down by halving when it
  exceeds `max_context` (Ollama steps down on out-of-memory).
- /api/chat (NDJSON), /v1/models, /v1/chat/completions (JSON or SSE) with tool calls, and the
  Anthropic-compatible /v1/messages (JSON or SSE events; text or tool_use). No /v1/responses (404).
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

from launcher.sim import laptop_chat
from launcher.sim.common import JSONHandler, ServeLoop, SimHTTPServer, sha256_hex, ServedSim

VERSION = "0.12.6"


@dataclass
class SimModel:
    """A model the simulated registry can pull."""

    name: str
    size: int
    capabilities: list[str]
    model_info: dict
    parameters: dict = field(default_factory=dict)
    family: str = "qwen3moe"
    parameter_size: str = "30.5B"
    quantization: str = "Q4_K_M"


def _qwen3moe_info(ctx: int = 262144) -> dict:
    return {"general.architecture": "qwen3moe", "general.parameter_count": 30532122624,
            "qwen3moe.block_count": 48, "qwen3moe.attention.head_count": 32,
            "qwen3moe.attention.head_count_kv": 4, "qwen3moe.attention.key_length": 128,
            "qwen3moe.attention.value_length": 128, "qwen3moe.embedding_length": 2048,
            "qwen3moe.context_length": ctx, "qwen3moe.expert_count": 128}


def _granite_hybrid_info() -> dict:
    """A hybrid (Mamba + attention) model: head_count_kv is a per-layer array, 0 on recurrent layers."""
    kv = [4 if i in (5, 15, 25, 35) else 0 for i in range(40)]
    return {"general.architecture": "granitehybrid", "granitehybrid.block_count": 40,
            "granitehybrid.attention.head_count": 12, "granitehybrid.attention.head_count_kv": kv,
            "granitehybrid.embedding_length": 1536, "granitehybrid.context_length": 1048576,
            "granitehybrid.ssm.state_size": 128, "granitehybrid.ssm.inner_size": 3072,
            "granitehybrid.ssm.time_step_rank": 48, "granitehybrid.ssm.group_count": 1,
            "granitehybrid.ssm.conv_kernel": 4}


def elide_arrays(info: dict) -> dict:
    """What real Ollama does to model_info without "verbose": true (server/routes.go getModelData):
    every array longer than 5 elements becomes []."""
    return {k: ([] if isinstance(v, list) and len(v) > 5 else v) for k, v in info.items()}


def default_registry() -> dict[str, SimModel]:
    return {m.name: m for m in [
        SimModel("qwen3-coder:30b", 18556701210, ["completion", "tools"], _qwen3moe_info(),
                 {"temperature": 0.7, "top_p": 0.8, "top_k": 20, "repeat_penalty": 1.05}),
        SimModel("qwen3:0.6b", 522653767, ["completion", "tools", "thinking"],
                 {"general.architecture": "qwen3", "qwen3.block_count": 28, "qwen3.attention.head_count": 16,
                  "qwen3.attention.head_count_kv": 8, "qwen3.attention.key_length": 128,
                  "qwen3.attention.value_length": 128, "qwen3.embedding_length": 1024,
                  "qwen3.context_length": 40960}, family="qwen3", parameter_size="751.63M"),
        SimModel("granite4:tiny-h", 4231993344, ["completion", "tools"], _granite_hybrid_info(),
                 family="granitehybrid", parameter_size="6.9B"),
        SimModel("gemma3:4b", 3338801804, ["completion", "vision"],
                 {"general.architecture": "gemma3", "gemma3.block_count": 34, "gemma3.attention.head_count": 8,
                  "gemma3.attention.head_count_kv": 4, "gemma3.attention.key_length": 256,
                  "gemma3.attention.value_length": 256, "gemma3.embedding_length": 2560,
                  "gemma3.context_length": 131072, "gemma3.attention.sliding_window": 1024},
                 family="gemma3", parameter_size="4.3B"),
    ]}


def _full(name: str) -> str:
    return name if ":" in name.rsplit("/", 1)[-1] else name + ":latest"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())


class OllamaSim(ServedSim):
    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, registry: dict[str, SimModel] | None = None,
                 local: list[str] | None = None, max_context: int | None = None, default_ctx: int = 4096,
                 ps_context: bool = True, pull_chunks: int = 4, pull_delay: float = 0.0,
                 version: str = VERSION):
        self.registry = registry or default_registry()
        self.local: dict[str, dict] = {}  # full name -> {"base": SimModel, "parameters": {...}, "modified_at"}
        self.loaded: dict[str, dict] = {}
        self.max_context, self.default_ctx, self.ps_context = max_context, default_ctx, ps_context
        self.pull_chunks, self.pull_delay, self.version = pull_chunks, pull_delay, version
        self.requests: list[tuple[str, str, object]] = []
        self.lock = threading.Lock()
        for name in local or []:
            self._install(name, self.registry[name], {})
        self.server = SimHTTPServer(host, port, _Handler, owner=self)
        self.loop = ServeLoop(self.server, name="sim-ollama")
        self.host = host
        self._port = self.server.port  # kept: still known after stop()

    # -- state -----------------------------------------------------------------------------
    def _install(self, name: str, base: SimModel, params: dict) -> None:
        self.local[_full(name)] = {"base": base, "parameters": {**base.parameters, **params},
                                   "modified_at": _now(), "digest": sha256_hex(name + json.dumps(params))}

    def find(self, name: str) -> dict | None:
        return self.local.get(_full(name or ""))

    def num_ctx(self, entry: dict) -> int:
        return int(entry["parameters"].get("num_ctx") or self.default_ctx)

    def load(self, name: str, keep_alive=None) -> dict:
        entry = self.find(name)
        ctx = min(self.num_ctx(entry), int(entry["base"].model_info.get(
            f"{entry['base'].model_info['general.architecture']}.context_length") or 1 << 30))
        while self.max_context and ctx > self.max_context and ctx > 2048:
            ctx //= 2  # Ollama steps the context down when it does not fit
        size = entry["base"].size + ctx * 98304 // 8
        row = {"name": _full(name), "model": _full(name), "size": size, "digest": entry["digest"],
               "details": self.details(entry), "expires_at": "2099-01-01T00:00:00Z", "size_vram": size}
        if self.ps_context:
            row["context_length"] = ctx
        with self.lock:
            self.loaded[_full(name)] = row
        return row

    @staticmethod
    def details(entry: dict) -> dict:
        b = entry["base"]
        return {"parent_model": "", "format": "gguf", "family": b.family, "families": [b.family],
                "parameter_size": b.parameter_size, "quantization_level": b.quantization}


class _Handler(JSONHandler):
    server_version = "Ollama-sim"

    @property
    def sim(self) -> OllamaSim:
        return self.server.owner

    def route(self, method: str) -> None:
        path = self.path.split("?", 1)[0]
        body = self.parse_json(self.read_body()) if method in ("POST", "DELETE") else None
        self.sim.requests.append((method, path, body))
        body = body if isinstance(body, dict) else {}
        handler = {("GET", "/"): lambda b: self.send_bytes(200, b"Ollama is running"),
                   ("GET", "/api/version"): lambda b: self.send_json(200, {"version": self.sim.version}),
                   ("GET", "/api/tags"): self.tags, ("GET", "/api/ps"): self.ps,
                   ("POST", "/api/show"): self.show, ("POST", "/api/pull"): self.pull,
                   ("POST", "/api/create"): self.create, ("POST", "/api/generate"): self.generate,
                   ("POST", "/api/chat"): self.chat, ("DELETE", "/api/delete"): self.delete,
                   ("GET", "/v1/models"): self.v1_models,
                   ("POST", "/v1/chat/completions"): self.v1_chat,
                   ("POST", "/v1/messages"): self.v1_messages}.get((method, path))
        if handler is None:
            self.send_bytes(404, b"404 page not found")
            return
        handler(body)

    def ndjson_line(self, obj) -> None:
        self.wfile.write(json.dumps(obj).encode() + b"\n")
        self.wfile.flush()

    def start_ndjson(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def not_found(self, name: str, hint: str = "") -> None:
        self.send_json(404, {"error": f"model '{name}' not found{hint}"})

    # -- model management ------------------------------------------------------------------
    def tags(self, _b) -> None:
        rows = [{"name": n, "model": n, "modified_at": e["modified_at"], "size": e["base"].size,
                 "digest": e["digest"], "details": self.sim.details(e)} for n, e in self.sim.local.items()]
        self.send_json(200, {"models": rows})

    def ps(self, _b) -> None:
        self.send_json(200, {"models": list(self.sim.loaded.values())})

    def show(self, b) -> None:
        name = b.get("model") or b.get("name") or ""
        entry = self.sim.find(name)
        if entry is None:
            return self.not_found(name)
        params = "\n".join(f"{k:<30} {v}" for k, v in entry["parameters"].items())
        self.send_json(200, {"license": "Apache License 2.0", "modelfile": f"FROM {name}\n",
                             "parameters": params, "template": "{{ .Prompt }}",
                             "details": self.sim.details(entry),
                             "model_info": (entry["base"].model_info if b.get("verbose")
                                            else elide_arrays(entry["base"].model_info)),
                             "capabilities": entry["base"].capabilities, "modified_at": entry["modified_at"]})

    def pull(self, b) -> None:
        name = b.get("model") or b.get("name") or ""
        base = self.sim.registry.get(_full(name)) or self.sim.registry.get(name)
        self.start_ndjson()
        try:
            self.ndjson_line({"status": "pulling manifest"})
            if base is None:
                self.ndjson_line({"error": "pull model manifest: file does not exist"})
                return
            layers = [(sha256_hex(name + "weights"), base.size), (sha256_hex(name + "template"), 1482),
                      (sha256_hex(name + "params"), 182)]
            for digest, total in layers:
                status = f"pulling {digest[:12]}"
                self.ndjson_line({"status": status, "digest": f"sha256:{digest}", "total": total})
                for i in range(1, self.sim.pull_chunks + 1):
                    if self.sim.pull_delay:
                        time.sleep(self.sim.pull_delay)
                    self.ndjson_line({"status": status, "digest": f"sha256:{digest}", "total": total,
                                      "completed": total * i // self.sim.pull_chunks})
            for s in ("verifying sha256 digest", "writing manifest"):
                self.ndjson_line({"status": s})
            self.sim._install(name, base, {})
            self.ndjson_line({"status": "success"})
        except (BrokenPipeError, ConnectionResetError):
            pass

    def create(self, b) -> None:
        name, src = b.get("model") or "", b.get("from") or ""
        entry = self.sim.find(src)
        if entry is None:
            return self.not_found(src)
        if not name:
            return self.send_json(400, {"error": "model name is required"})
        self.start_ndjson()
        self.ndjson_line({"status": f"using existing layer sha256:{sha256_hex(src + 'weights')}"})
        self.ndjson_line({"status": f"creating new layer sha256:{sha256_hex(json.dumps(b.get('parameters')))}"})
        self.ndjson_line({"status": "writing manifest"})
        self.sim._install(name, entry["base"], {**{k: v for k, v in entry["parameters"].items()
                                                   if k not in entry["base"].parameters},
                                                **(b.get("parameters") or {})})
        self.sim.loaded.pop(_full(name), None)
        self.ndjson_line({"status": "success"})

    def delete(self, b) -> None:
        name = b.get("model") or ""
        if self.sim.local.pop(_full(name), None) is None:
            return self.not_found(name)
        self.send_bytes(200, b"")

    # -- inference -------------------------------------------------------------------------
    def _need(self, name: str) -> dict | None:
        entry = self.sim.find(name)
        if entry is None:
            self.send_json(404, {"error": f"model '{name}' not found, try pulling it first"})
        return entry

    def generate(self, b) -> None:
        name = b.get("model") or ""
        if self._need(name) is None:
            return
        if b.get("keep_alive") in (0, "0", "0s"):
            self.sim.loaded.pop(_full(name), None)
            return self.send_json(200, {"model": name, "created_at": _now(), "response": "", "done": True,
                                        "done_reason": "unload"})
        self.sim.load(name, b.get("keep_alive"))
        if not b.get("prompt"):
            return self.send_json(200, {"model": name, "created_at": _now(), "response": "", "done": True,
                                        "done_reason": "load"})
        text = "Hello from the simulated model."
        final = {"model": name, "created_at": _now(), "response": "", "done": True, "done_reason": "stop",
                 "total_duration": 1000, "eval_count": len(text.split())}
        if b.get("stream") is False:
            return self.send_json(200, {**final, "response": text})
        self.start_ndjson()
        for word in text.split(" "):
            self.ndjson_line({"model": name, "created_at": _now(), "response": word + " ", "done": False})
        self.ndjson_line(final)

    def chat(self, b) -> None:
        name = b.get("model") or ""
        if self._need(name) is None:
            return
        self.sim.load(name)
        r = laptop_chat.reply(b.get("messages") or [], b.get("tools"))
        msg = {"role": "assistant", "content": r["content"]}
        if r["tool_calls"]:  # the native API gives arguments as an object
            msg["tool_calls"] = [{"function": {"name": t["function"]["name"],
                                               "arguments": json.loads(t["function"]["arguments"])}}
                                 for t in r["tool_calls"]]
        final = {"model": name, "created_at": _now(), "message": msg, "done": True, "done_reason": "stop"}
        if b.get("stream") is False:
            return self.send_json(200, final)
        self.start_ndjson()
        self.ndjson_line({**final, "done": False, "done_reason": None})
        self.ndjson_line({**final, "message": {"role": "assistant", "content": ""}})

    def v1_models(self, _b) -> None:
        self.send_json(200, {"object": "list", "data": [
            {"id": n, "object": "model", "created": 1700000000, "owned_by": "library"} for n in self.sim.local]})

    def v1_chat(self, b) -> None:
        name = b.get("model") or ""
        if self.sim.find(name) is None:
            return self.send_json(404, laptop_chat.openai_error(
                f'model "{name}" not found, try pulling it first', "api_error"))
        self.sim.load(name)
        args = (name, b.get("messages") or [], b.get("tools"), "fp_ollama")
        if b.get("stream"):
            return self.stream_events((None, c) for c in laptop_chat.chunks(*args))
        self.send_json(200, laptop_chat.completion(*args))

    def v1_messages(self, b) -> None:
        """Ollama's Anthropic-compatible /v1/messages: one turn (text or tool_use), whole or as SSE events."""
        from launcher.sim.vllm_apis import anthropic_to_chat

        name = b.get("model") or ""
        if self.sim.find(name) is None:
            return self.send_json(404, {"type": "error", "error": {
                "type": "not_found_error", "message": f"model '{name}' not found"}})
        if b.get("max_tokens") is None:
            return self.send_json(400, {"type": "error", "error": {
                "type": "invalid_request_error", "message": "max_tokens is required"}})
        self.sim.load(name)
        msgs, tools, _choice = anthropic_to_chat(b)
        r = laptop_chat.reply(msgs, tools, "fp_ollama")
        blocks = ([{"type": "text", "text": r["content"]}] if r["content"] else []) + [
            {"type": "tool_use", "id": "toolu_" + t["id"].split("_")[-1], "name": t["function"]["name"],
             "input": json.loads(t["function"]["arguments"])} for t in r["tool_calls"]]
        stop = "tool_use" if r["tool_calls"] else "end_turn"
        usage = {"input_tokens": sum(len(str(m.get("content") or "").split()) + 4 for m in msgs),
                 "output_tokens": max(1, len(r["content"].split()) + 8 * len(r["tool_calls"]))}
        msg = {"id": "msg_" + sha256_hex(json.dumps(b))[:24], "type": "message", "role": "assistant",
               "model": name, "content": blocks, "stop_reason": stop, "stop_sequence": None, "usage": usage}
        if not b.get("stream"):
            return self.send_json(200, msg)
        events = [("message_start", {"type": "message_start", "message": {
            **msg, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 0}}})]
        for i, block in enumerate(blocks):
            if block["type"] == "text":
                events.append(("content_block_start", {"type": "content_block_start", "index": i,
                                                       "content_block": {"type": "text", "text": ""}}))
                delta = {"type": "text_delta", "text": block["text"]}
            else:
                events.append(("content_block_start", {"type": "content_block_start", "index": i, "content_block": {
                    "type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}}))
                delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
            events.append(("content_block_delta", {"type": "content_block_delta", "index": i, "delta": delta}))
            events.append(("content_block_stop", {"type": "content_block_stop", "index": i}))
        events += [("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                                      "usage": {"output_tokens": usage["output_tokens"]}}),
                   ("message_stop", {"type": "message_stop"})]
        self.stream_events(events)
