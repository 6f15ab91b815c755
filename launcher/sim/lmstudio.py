"""A simulated LM Studio server, built from LM Studio's documented REST API (v1 since 0.4, v0 since
0.3.6) and its OpenAI-compatible endpoints. In-process: `LmStudioSim(...).start()`, `.url`, `.requests`.

What it stands for:
- GET /api/v1/models -> {"models": [{key, type, max_context_length, capabilities{trained_for_tool_use},
  loaded_instances[{id, config{context_length, parallel, flash_attention}}]}]}
- POST /api/v1/models/load {"model", "context_length"} -> {"type","instance_id","status":"loaded",
  "load_time_seconds","load_config":{"context_length"}}; POST /api/v1/models/unload {"instance_id"}.
- GET /api/v0/models -> {"data": [{id, state "loaded"|"not-loaded", max_context_length,
  loaded_context_length}]}.
- The silent reduction: a context above `max_loadable_context` (what memory allows) is loaded at that
  figure without an error. `report_requested=True` makes the load answer echo the request (the worst
  case: only the models list tells the truth).
- /v1/models lists downloaded models; /v1/chat/completions JIT-loads with `jit_context` (4096).
- /__lms/{load,unload,ps,ls}: the channel the `lms` CLI shim (launcher/sim/lms_shim.py) drives. The real
  `lms` talks to LM Studio's daemon over its own SDK socket, not the REST API, so it loads models even on
  a server without /api/v1 (0.3.x); these routes stand for that channel and exist on every version.
"""
from __future__ import annotations

import threading

from launcher.sim import laptop_chat
from launcher.sim.common import JSONHandler, ServeLoop, SimHTTPServer, ServedSim


def default_catalog() -> dict[str, dict]:
    return {
        "qwen/qwen3-coder-30b": {"type": "llm", "publisher": "qwen", "display_name": "Qwen3 Coder 30B",
                                 "architecture": "qwen3_moe", "size_bytes": 18630000000, "params_string": "30B",
                                 "max_context_length": 262144, "format": "gguf",
                                 "quantization": {"name": "Q4_K_M", "bits_per_weight": 4},
                                 "capabilities": {"vision": False, "trained_for_tool_use": True}},
        "google/gemma-3-4b": {"type": "llm", "publisher": "google", "display_name": "Gemma 3 4B",
                              "architecture": "gemma3", "size_bytes": 3340000000, "params_string": "4B",
                              "max_context_length": 131072, "format": "gguf",
                              "quantization": {"name": "Q4_K_M", "bits_per_weight": 4},
                              "capabilities": {"vision": True, "trained_for_tool_use": False}},
    }


class LmStudioSim(ServedSim):
    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, catalog: dict | None = None,
                 max_loadable_context: int | None = None, report_requested: bool = False,
                 jit_context: int = 4096, default_context: int = 4096, v1: bool = True,
                 v0_loaded_context: bool = True):
        self.catalog = catalog or default_catalog()
        self.loaded: dict[str, dict] = {}  # instance id -> {"key", "context_length"}
        self.max_loadable_context, self.report_requested = max_loadable_context, report_requested
        self.jit_context, self.default_context, self.v1 = jit_context, default_context, v1
        # False: v0 rows say "loaded" without loaded_context_length (only `lms ps` tells the context)
        self.v0_loaded_context = v0_loaded_context
        self.requests: list[tuple[str, str, object]] = []
        self.lock = threading.Lock()
        self.server = SimHTTPServer(host, port, _Handler, owner=self)
        self.loop = ServeLoop(self.server, name="sim-lmstudio")
        self.host = host
        self._port = self.server.port  # kept: still known after stop()

    def load(self, key: str, context: int | None, identifier: str | None = None) -> tuple[str, int]:
        row = self.catalog[key]
        want = int(context or self.default_context)
        got = min(want, row["max_context_length"])
        if self.max_loadable_context:
            got = min(got, self.max_loadable_context)  # silently reduced: no error, no warning
        with self.lock:
            n = sum(1 for v in self.loaded.values() if v["key"] == key)
            inst = identifier or (key if n == 0 else f"{key}:{n + 1}")
            self.loaded[inst] = {"key": key, "context_length": got}
        return inst, got

    def lms_ps(self) -> list[dict]:
        """What `lms ps --json` prints: one LLMInstanceInfo per loaded instance (SDK field names)."""
        out = []
        for inst, v in list(self.loaded.items()):
            row = self.catalog[v["key"]]
            out.append({"type": row["type"], "modelKey": v["key"], "format": row["format"],
                        "displayName": row["display_name"], "path": f"{v['key']}/{v['key'].split('/')[-1]}.gguf",
                        "sizeBytes": row["size_bytes"], "paramsString": row["params_string"],
                        "architecture": row["architecture"], "identifier": inst, "instanceReference": inst,
                        "vision": row["capabilities"].get("vision", False),
                        "trainedForToolUse": row["capabilities"].get("trained_for_tool_use", False),
                        "maxContextLength": row["max_context_length"], "contextLength": v["context_length"]})
        return out

    def instances(self, key: str) -> list[dict]:
        return [{"id": i, "config": {"context_length": v["context_length"], "parallel": 1,
                                     "flash_attention": True, "eval_batch_size": 512}}
                for i, v in self.loaded.items() if v["key"] == key]


class _Handler(JSONHandler):
    server_version = "LMStudio-sim"

    @property
    def sim(self) -> LmStudioSim:
        return self.server.owner

    def route(self, method: str) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        body = self.parse_json(self.read_body()) if method == "POST" else None
        self.sim.requests.append((method, path, body))
        body = body if isinstance(body, dict) else {}
        routes = {("GET", "/api/v0/models"): self.v0_models, ("GET", "/v1/models"): self.openai_models,
                  ("POST", "/v1/chat/completions"): self.chat,
                  ("POST", "/__lms/load"): self.lms_load, ("POST", "/__lms/unload"): self.lms_unload,
                  ("GET", "/__lms/ps"): lambda _b: self.send_json(200, self.sim.lms_ps()),
                  ("GET", "/__lms/ls"): lambda _b: self.send_json(200, [
                      {"modelKey": k, "type": r["type"], "maxContextLength": r["max_context_length"],
                       "sizeBytes": r["size_bytes"]} for k, r in self.sim.catalog.items()])}
        if self.sim.v1:
            routes.update({("GET", "/api/v1/models"): self.v1_models,
                           ("POST", "/api/v1/models/load"): self.v1_load,
                           ("POST", "/api/v1/models/unload"): self.v1_unload})
        handler = routes.get((method, path))
        if handler is None:
            return self.send_json(404, {"error": f"Unexpected endpoint or method. ({method} {path})"})
        handler(body)

    def v1_models(self, _b) -> None:
        rows = [{"key": k, **{f: v for f, v in row.items()}, "loaded_instances": self.sim.instances(k)}
                for k, row in self.sim.catalog.items()]
        self.send_json(200, {"models": rows})

    def v1_load(self, b) -> None:
        key = b.get("model") or ""
        if key not in self.sim.catalog:
            return self.send_json(404, {"error": {"type": "model_not_found",
                                                  "message": f"Model '{key}' not found. Download it first."}})
        want = b.get("context_length")
        inst, got = self.sim.load(key, want)
        shown = int(want) if (self.sim.report_requested and want) else got
        self.send_json(200, {"type": self.sim.catalog[key]["type"], "instance_id": inst,
                             "load_time_seconds": 2.1, "status": "loaded",
                             "load_config": {"context_length": shown, "eval_batch_size": 512,
                                             "flash_attention": True, "offload_kv_cache_to_gpu": True}})

    def v1_unload(self, b) -> None:
        inst = b.get("instance_id") or ""
        with self.sim.lock:
            gone = self.sim.loaded.pop(inst, None)
        if gone is None:
            return self.send_json(404, {"error": {"type": "not_found", "message": f"No instance '{inst}'"}})
        self.send_json(200, {"instance_id": inst})

    def lms_load(self, b) -> None:
        key = b.get("model") or ""
        if key not in self.sim.catalog:
            return self.send_json(404, {"error": f"Model '{key}' not found. Download it first (lms get {key})."})
        inst, got = self.sim.load(key, b.get("context_length"), b.get("identifier"))
        self.send_json(200, {"identifier": inst, "modelKey": key, "contextLength": got})

    def lms_unload(self, b) -> None:
        with self.sim.lock:
            if b.get("all"):
                gone = list(self.sim.loaded)
                self.sim.loaded.clear()
            else:
                gone = [i for i in [b.get("identifier")] if self.sim.loaded.pop(i or "", None)]
        self.send_json(200 if gone or b.get("all") else 404, {"unloaded": gone})

    def v0_models(self, _b) -> None:
        data = []
        for k, row in self.sim.catalog.items():
            base = {"id": k, "object": "model", "type": row["type"], "publisher": row["publisher"],
                    "arch": row["architecture"], "compatibility_type": "gguf",
                    "quantization": row["quantization"]["name"], "max_context_length": row["max_context_length"],
                    "capabilities": ["tool_use"] if row["capabilities"].get("trained_for_tool_use") else []}
            insts = self.sim.instances(k)
            if insts:
                extra = ({"loaded_context_length": insts[0]["config"]["context_length"]}
                         if self.sim.v0_loaded_context else {})
                data.append({**base, "state": "loaded", **extra})
            else:
                data.append({**base, "state": "not-loaded"})
        self.send_json(200, {"object": "list", "data": data})

    def openai_models(self, _b) -> None:
        ids = list(self.sim.loaded) + [k for k in self.sim.catalog if k not in self.sim.loaded]
        self.send_json(200, {"object": "list", "data": [
            {"id": i, "object": "model", "owned_by": "organization_owner"} for i in ids]})

    def chat(self, b) -> None:
        model = b.get("model") or ""
        key = self.sim.loaded.get(model, {}).get("key") or (model if model in self.sim.catalog else None)
        if key is None:
            return self.send_json(404, laptop_chat.openai_error(f'Model "{model}" not found', "model_not_found"))
        if model not in self.sim.loaded and not self.sim.instances(key):
            self.sim.load(key, self.sim.jit_context)  # JIT load with the default context
        args = (model, b.get("messages") or [], b.get("tools"), "lmstudio")
        if b.get("stream"):
            return self.stream_events((None, c) for c in laptop_chat.chunks(*args))
        self.send_json(200, laptop_chat.completion(*args))
