"""The simulated vLLM's HTTP routes, in vLLM's wire format (../shared/reference/vllm.md, HTTP).

Each behaviour stands for real vLLM behaviour: only /v1 paths need the key (401 {"error":
"Unauthorized"}); unknown model → 404 "The model `X` does not exist."; an empty or non-JSON POST
body → 400 (FastAPI validation); prompt + max_tokens > max_model_len → 400 with vLLM's text;
tool_choice auto without --enable-auto-tool-choice/--tool-call-parser → 400.
"""
from __future__ import annotations

import time
from typing import Any

from launcher.sim.common import JSONHandler, new_id
from launcher.sim.vllm_chat import ChatRequestError, Turn, count_tokens, pieces, plan_turn

AUTO_TOOL_ERROR = '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set'
EMPTY_BODY_ERROR = "[{'type': 'missing', 'loc': ('body',), 'msg': 'Field required', 'input': None}]"


def error_body(message: str, err_type: str = "BadRequestError", code: int = 400, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": err_type, "param": param, "code": code}}


def context_error(cfg, prompt: int, max_tokens: int | None) -> str | None:
    """vLLM's 400 text when prompt + max_tokens exceeds max_model_len (None when it fits)."""
    mml = cfg.effective_max_model_len
    if prompt > mml or (max_tokens is None and prompt >= mml):
        return (f"This model's maximum context length is {mml} tokens. However, your request has "
                f"{prompt} input tokens. Please reduce the length of the input messages.")
    if max_tokens is not None and prompt + max_tokens > mml:
        if cfg.context_error_format == "new":
            return (f"'max_tokens' or 'max_completion_tokens' is too large: {max_tokens}. This model's "
                    f"maximum context length is {mml} tokens and your request has {prompt} input tokens "
                    f"({max_tokens} > {mml} - {prompt}).")
        return (f"This model's maximum context length is {mml} tokens. However, you requested "
                f"{prompt + max_tokens} tokens ({prompt} in the messages, {max_tokens} in the completion). "
                f"Please reduce the length of the messages or completion.")
    return None


def _label(v: Any) -> str:
    return str(v).replace("\\", "\\\\").replace('"', '\\"')


def render_metrics(sim) -> str:
    cfg, m = sim.config, sim.metrics
    lab = f'engine="0",model_name="{_label(cfg.served_model_name)}"'
    with m.lock:
        usage = min(1.0, m.running_tokens / cfg.kv_tokens) if cfg.kv_tokens else 0.0
        rows = [
            "# HELP vllm:num_requests_running Number of requests in model execution batches.",
            "# TYPE vllm:num_requests_running gauge",
            f"vllm:num_requests_running{{{lab}}} {float(m.running)}",
            "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.",
            "# TYPE vllm:num_requests_waiting gauge",
            f"vllm:num_requests_waiting{{{lab}}} {float(m.waiting)}",
            "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.",
            "# TYPE vllm:kv_cache_usage_perc gauge",
            f"vllm:kv_cache_usage_perc{{{lab}}} {usage}",
            "# HELP vllm:num_preemptions_total Cumulative number of preemption from the engine.",
            "# TYPE vllm:num_preemptions_total counter",
            f"vllm:num_preemptions_total{{{lab}}} {float(m.preemptions)}",
            "# HELP vllm:prompt_tokens_total Number of prefill tokens processed.",
            "# TYPE vllm:prompt_tokens_total counter",
            f"vllm:prompt_tokens_total{{{lab}}} {float(m.prompt_tokens)}",
            "# HELP vllm:generation_tokens_total Number of generation tokens processed.",
            "# TYPE vllm:generation_tokens_total counter",
            f"vllm:generation_tokens_total{{{lab}}} {float(m.generation_tokens)}",
            "# HELP vllm:request_success_total Count of successfully processed requests.",
            "# TYPE vllm:request_success_total counter",
        ]
        for reason in ("stop", "length", "abort"):
            rows.append(f'vllm:request_success_total{{{lab},finished_reason="{reason}"}} '
                        f"{float(m.success.get(reason, 0) + (m.success.get('tool_calls', 0) if reason == 'stop' else 0))}")
    info = {
        "block_size": cfg.block_size, "cache_dtype": cfg.cache_dtype, "calculate_kv_scales": "False",
        "cpu_offload_gb": 0, "enable_prefix_caching": "True", "engine": "0",
        "gpu_memory_utilization": cfg.gpu_memory_utilization, "is_attention_free": "False",
        "kv_cache_memory_bytes": cfg.kv_tokens * cfg.kv_bytes_per_token,
        "kv_cache_size_tokens": cfg.kv_tokens, "num_cpu_blocks": "None",
        "num_gpu_blocks": cfg.num_gpu_blocks, "num_gpu_blocks_override": "None",
        "prefix_caching_hash_algo": "sha256", "sliding_window": "None", "swap_space": 4,
    }
    labels = ",".join(f'{k}="{_label(v)}"' for k, v in info.items())
    rows += ["# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig",
             "# TYPE vllm:cache_config_info gauge",
             f"vllm:cache_config_info{{{labels}}} 1.0"]
    return "\n".join(rows) + "\n"


class VllmHandler(JSONHandler):
    """Routes for one VllmSim (self.server.owner)."""

    @property
    def sim(self):
        return self.server.owner

    def route(self, method: str) -> None:
        sim = self.sim
        path = self.path.split("?", 1)[0]
        raw = self.read_body() if method == "POST" else b""
        cfg = sim.config
        drop = method == "POST" and path.startswith("/v1/") and cfg.has("drop-body")
        if drop:
            raw = b""
        body = self.parse_json(raw)
        sim.record(method, path, self.headers, raw, body)
        if sim.state == "dead":
            return self.send_json(503, error_body("EngineCore encountered an issue.", "EngineDeadError", 503))
        if path.startswith("/v1") and cfg.api_key and not cfg.has("auth-open"):
            if self.headers.get("Authorization") != f"Bearer {cfg.api_key}":
                return self.send_json(401, {"error": "Unauthorized"})
        if method == "GET":
            return self._get(path)
        if method == "POST":
            return self._post(path, body)
        return self.send_json(405, {"detail": "Method Not Allowed"})

    # -- GET -------------------------------------------------------------------------------
    def _get(self, path: str) -> None:
        sim, cfg = self.sim, self.sim.config
        if path in ("/health", "/ping"):
            return self.send_bytes(200, b"", "application/json")
        if path == "/version":
            return self.send_json(200, {"version": cfg.version})
        if path == "/metrics":
            return self.send_bytes(200, sim.metrics_text().encode(), "text/plain; version=0.0.4; charset=utf-8")
        if path == "/v1/models":
            mid = sim.listed_model
            return self.send_json(200, {"object": "list", "data": [{
                "id": mid, "object": "model", "created": sim.created_at, "owned_by": "vllm",
                "root": cfg.model, "parent": None, "max_model_len": cfg.effective_max_model_len,
                "permission": [{"id": new_id("modelperm-"), "object": "model_permission",
                                "created": sim.created_at, "allow_create_engine": False, "allow_sampling": True,
                                "allow_logprobs": True, "allow_search_indices": False, "allow_view": True,
                                "allow_fine_tuning": False, "organization": "*", "group": None,
                                "is_blocking": False}]}]})
        if path.startswith("/v1/") and path.rstrip("/") in ("/v1/chat/completions", "/v1/messages", "/v1/responses"):
            return self.send_json(405, {"detail": "Method Not Allowed"})
        return self.send_json(404, {"detail": "Not Found"})

    # -- POST ------------------------------------------------------------------------------
    def _post(self, path: str, body: Any) -> None:
        from launcher.sim import vllm_apis
        handlers = {
            "/v1/chat/completions": self.chat_completions,
            "/v1/messages": lambda b: vllm_apis.messages(self, b),
            "/v1/messages/count_tokens": lambda b: vllm_apis.count_tokens_endpoint(self, b),
            "/v1/responses": lambda b: vllm_apis.responses(self, b),
        }
        fn = handlers.get(path.rstrip("/"))
        if fn is None:
            return self.send_json(404, {"detail": "Not Found"})
        if not isinstance(body, dict):
            return self.send_json(400, error_body(EMPTY_BODY_ERROR))
        try:
            fn(body)
        except ChatRequestError as exc:
            self.send_json(exc.status, error_body(exc.message, exc.err_type, exc.status, exc.param))
        except (BrokenPipeError, ConnectionResetError):
            pass

    def check_model(self, body: dict) -> None:
        model = body.get("model")
        if model is not None and model != self.sim.listed_model:
            raise ChatRequestError(404, f"The model `{model}` does not exist.", "NotFoundError", "model")

    def check_tools(self, tools: list | None, tool_choice: Any) -> Any:
        """vLLM's default: tool_choice auto when tools are given; auto needs the parser flags."""
        cfg = self.sim.config
        if tools and tool_choice is None:
            tool_choice = "auto"
        if tool_choice == "auto" and tools is not None:
            if (cfg.has("no-auto-tool-choice") or not cfg.enable_auto_tool_choice
                    or not cfg.tool_call_parser):
                raise ChatRequestError(400, AUTO_TOOL_ERROR)
        return tool_choice

    def budget(self, prompt: int, max_tokens: Any) -> int:
        cfg = self.sim.config
        if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1):
            raise ChatRequestError(400, f"max_tokens must be at least 1, got {max_tokens}.")
        msg = context_error(cfg, prompt, max_tokens)
        if msg:
            raise ChatRequestError(400, msg)
        return max_tokens if max_tokens is not None else cfg.effective_max_model_len - prompt

    def generate(self, messages: list, tools: list | None, tool_choice: Any, max_tokens: Any,
                 thinking: bool = True):
        """Validate, plan the turn; returns (turn, prompt_tokens)."""
        sim = self.sim
        if not isinstance(messages, list) or not messages:
            raise ChatRequestError(400, "messages: Field required")
        tool_choice = self.check_tools(tools, tool_choice)
        prompt = count_tokens(messages, tools)
        budget = self.budget(prompt, max_tokens)
        turn = plan_turn(messages, tools, tool_choice, budget, sim.config, thinking=thinking)
        return turn, prompt

    def run_engine(self, prompt: int, turn: Turn, steps: int = 4):
        """Context of one generation: admits it, paces latency, moves counters, releases it.

        Yields once per step (the caller emits a chunk); a wedged engine blocks forever (until stop)."""
        sim, cfg = self.sim, self.sim.config
        sim.metrics.admit(prompt + turn.completion_tokens, cfg.kv_tokens)
        finish = None
        try:
            if cfg.fail == "wedge":
                while sim.sleep(0.5):
                    pass
                return
            sim.metrics.add(prompt=prompt)
            if not sim.sleep(cfg.latency_s):
                return
            left = turn.completion_tokens
            for i in range(steps):
                share = left // (steps - i)
                left -= share
                sim.metrics.add(generation=share)
                yield i
                if i < steps - 1 and not sim.sleep(cfg.token_s):
                    return
            finish = turn.finish
        finally:
            sim.metrics.release(prompt + turn.completion_tokens, finish)

    # -- /v1/chat/completions --------------------------------------------------------------
    def chat_completions(self, body: dict) -> None:
        self.check_model(body)
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        if body.get("tool_choice") not in (None, "none") and body.get("tools") is None:
            # vLLM's ChatCompletionRequest validator
            raise ChatRequestError(400, "When using `tool_choice`, `tools` must be set.")
        kwargs = body.get("chat_template_kwargs") or {}
        thinking = not (isinstance(kwargs, dict) and kwargs.get("enable_thinking") is False)
        turn, prompt = self.generate(body.get("messages"), body.get("tools"), body.get("tool_choice"), max_tokens,
                                     thinking=thinking)
        model = body.get("model") or self.sim.listed_model
        cid, created = new_id("chatcmpl-"), int(time.time())
        usage = {"prompt_tokens": prompt, "total_tokens": prompt + turn.completion_tokens,
                 "completion_tokens": turn.completion_tokens, "prompt_tokens_details": None}
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            chunks = chat_chunks(turn)
            self.start_sse()

            def frame(delta: dict, finish: str | None = None) -> dict:
                return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish,
                                     "stop_reason": None}]}
            steps = max(1, len(chunks))
            sent = 0
            for _ in self.run_engine(prompt, turn, steps=steps):
                self.sse(frame(chunks[sent]))
                sent += 1
            if sent < steps:
                return  # stopped
            self.sse(frame({}, turn.finish))
            if include_usage:
                self.sse({"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                          "choices": [], "usage": usage})
            self.sse("[DONE]")
            return
        done = False
        for _ in self.run_engine(prompt, turn, steps=1):
            done = True
        if not done:
            return
        message: dict[str, Any] = {"role": "assistant", "content": turn.content, "refusal": None,
                                   "annotations": None, "audio": None, "function_call": None,
                                   "tool_calls": [{"id": c.id, "type": "function",
                                                   "function": {"name": c.name, "arguments": c.arguments}}
                                                  for c in turn.tool_calls],
                                   "reasoning": turn.reasoning, "reasoning_content": turn.reasoning}
        self.send_json(200, {"id": cid, "object": "chat.completion", "created": created, "model": model,
                             "choices": [{"index": 0, "message": message, "logprobs": None,
                                          "finish_reason": turn.finish, "stop_reason": None, "token_ids": None}],
                             "service_tier": None, "system_fingerprint": None, "usage": usage,
                             "prompt_logprobs": None, "prompt_token_ids": None, "kv_transfer_params": None})


def chat_chunks(turn: Turn) -> list[dict]:
    """The deltas of a streamed chat completion (before the finish chunk)."""
    out: list[dict] = [{"role": "assistant", "content": ""}]
    if turn.reasoning:
        for piece in pieces(turn.reasoning, 24):
            out.append({"reasoning": piece, "reasoning_content": piece})
    if turn.content:
        for piece in pieces(turn.content, 16):
            out.append({"content": piece})
    for idx, call in enumerate(turn.tool_calls):
        out.append({"tool_calls": [{"index": idx, "id": call.id, "type": "function",
                                    "function": {"name": call.name, "arguments": ""}}]})
        args = pieces(call.arguments, 8)
        if turn.stream_broken and len(args) > 2:
            args = args[:1] + args[2:]  # a lost delta: the streamed call no longer matches
        elif turn.stream_broken:
            args = ['{"'] + args
        for piece in args:
            out.append({"tool_calls": [{"index": idx, "function": {"arguments": piece}}]})
    return out
