"""The API styles `launch validate` speaks: OpenAI chat completions, Anthropic messages, Azure OpenAI.

A style builds the check requests (the same tool, the same question, the recipe's sampling) and turns
any answer, streamed or not, into one `Reply`, so the checks never look at a wire format.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from urllib.parse import urlsplit

TOOL_NAME = "get_weather"
QUESTION = "What is the weather in Zurich right now? Use the get_weather tool."
TOOL_DESCRIPTION = "Get the current weather for a city."
TOOL_PARAMETERS = {
    "type": "object",
    "properties": {"city": {"type": "string", "description": "City name, e.g. Zurich"}},
    "required": ["city"],
}
# The result the round trip sends back: values a model would not invent, so an answer that uses the
# result can be recognised (17 degrees, "light rain").
TOOL_RESULT = {"city": "Zurich", "temperature_c": 17, "condition": "light rain"}
RESULT_MARKERS = ("17", "rain")

ANTHROPIC_VERSION = "2023-06-01"
ANTHROPIC_SAMPLING = ("temperature", "top_p", "top_k")


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str  # the raw JSON text as sent (Anthropic: the input object, serialised)
    arguments_obj: object = None  # Anthropic only: the parsed input as the server sent it


@dataclass
class Reply:
    """One answer, normalised. finish is OpenAI's vocabulary: stop | tool_calls | length | other."""

    status: int | None = None
    finish: str | None = None
    content: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    error: str | None = None  # the server's error message, or a transport error
    body: str = ""  # raw body text (trimmed later for evidence)
    shape_ok: bool = True  # False: a 200 whose body is not this API's shape
    stream_done: bool | None = None  # streams: the terminator arrived ([DONE] / message_stop)
    events: int = 0  # streams: data events parsed
    transport: str | None = None  # "unreachable" | "timeout" when no HTTP answer came
    elapsed: float = 0.0


def error_message(data) -> str | None:
    """The message of an error body in any of the shapes servers use."""
    if not isinstance(data, dict):
        return None
    err = data.get("error")
    if isinstance(err, dict):
        return str(err.get("message") or err.get("type") or err)
    if isinstance(err, str):
        return err
    if data.get("object") == "error" or data.get("type") == "error":
        return str(data.get("message") or data.get("detail") or data)
    if "detail" in data and "choices" not in data and "content" not in data:
        return str(data["detail"])
    return None


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # content parts
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in value)
    return str(value)


class OpenAIStyle:
    name = "openai"

    def __init__(self, base_url: str, model: str, api_key: str | None):
        self.base = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key

    # -- requests --
    def headers(self, with_key: bool = True) -> dict[str, str]:
        h = {"Content-Type": "application/json"}
        if with_key and self.api_key:
            h["Authorization"] = f"Bearer {self.api_key}"
        return h

    def models_url(self) -> str:
        return f"{self.base}/models"

    def chat_url(self) -> str:
        return f"{self.base}/chat/completions"

    def tools(self) -> list[dict]:
        return [{"type": "function", "function": {"name": TOOL_NAME, "description": TOOL_DESCRIPTION,
                                                  "parameters": TOOL_PARAMETERS}}]

    def body(self, messages: list[dict], *, sampling: dict, max_tokens: int, stream: bool = False,
             tools: bool = True) -> dict:
        b: dict = {"model": self.model, "messages": messages, "max_tokens": max_tokens}
        if tools:
            b["tools"] = self.tools()
            b["tool_choice"] = "auto"
        b.update(sampling)
        if stream:
            b["stream"] = True
            b["stream_options"] = {"include_usage": True}
        return b

    def ask(self) -> list[dict]:
        return [{"role": "user", "content": QUESTION}]

    def round_trip(self, call: ToolCall) -> list[dict]:
        return [
            {"role": "user", "content": QUESTION},
            {"role": "assistant", "content": None,
             "tool_calls": [{"id": call.id, "type": "function",
                             "function": {"name": call.name, "arguments": call.arguments}}]},
            {"role": "tool", "tool_call_id": call.id, "content": json.dumps(TOOL_RESULT)},
        ]

    def filler(self, text: str) -> list[dict]:
        return [{"role": "user", "content": text}]

    # -- answers --
    def model_ids(self, data) -> list[str] | None:
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            return None
        return [str(m.get("id")) for m in data["data"] if isinstance(m, dict) and m.get("id")]

    def parse(self, status: int, data) -> Reply:
        r = Reply(status=status)
        if status != 200:
            r.error = error_message(data) or (json.dumps(data)[:300] if data is not None else None)
            return r
        try:
            choice = data["choices"][0]
            msg = choice.get("message") or {}
        except (KeyError, IndexError, TypeError, AttributeError):
            r.shape_ok = False
            r.error = error_message(data)
            return r
        r.finish = choice.get("finish_reason")
        r.content = _text(msg.get("content"))
        r.reasoning = _text(msg.get("reasoning")) or _text(msg.get("reasoning_content"))
        for i, tc in enumerate(msg.get("tool_calls") or []):
            fn = (tc or {}).get("function") or {}
            args = fn.get("arguments")
            r.tool_calls.append(ToolCall(id=str(tc.get("id") or f"call_{i}"), name=str(fn.get("name") or ""),
                                         arguments=args if isinstance(args, str) else json.dumps(args)))
        return r

    def parse_stream(self, lines) -> Reply:
        r = Reply(status=200, stream_done=False)
        calls: dict[int, dict] = {}
        for payload in _sse_data(lines):
            if payload == "[DONE]":
                r.stream_done = True
                continue
            try:
                chunk = json.loads(payload)
            except ValueError:
                r.shape_ok = False
                r.error = f"unparsable stream chunk: {payload[:120]}"
                continue
            r.events += 1
            if error_message(chunk):
                r.error = error_message(chunk)
                continue
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                r.content += _text(delta.get("content"))
                r.reasoning += _text(delta.get("reasoning")) or _text(delta.get("reasoning_content"))
                for tc in delta.get("tool_calls") or []:
                    slot = calls.setdefault(int(tc.get("index", len(calls))), {"id": "", "name": "", "args": ""})
                    slot["id"] = slot["id"] or (tc.get("id") or "")
                    fn = tc.get("function") or {}
                    slot["name"] += fn.get("name") or ""
                    args = fn.get("arguments")
                    slot["args"] += args if isinstance(args, str) else (json.dumps(args) if args else "")
                if choice.get("finish_reason"):
                    r.finish = choice["finish_reason"]
        r.tool_calls = [ToolCall(id=c["id"], name=c["name"], arguments=c["args"]) for _, c in sorted(calls.items())]
        return r


class AzureStyle(OpenAIStyle):
    """Azure OpenAI: the deployment name in the path, `?api-version=`, an `api-key` header."""

    name = "azure"

    def __init__(self, base_url: str, model: str, api_key: str | None, deployment: str, api_version: str):
        super().__init__(base_url, model, api_key)
        root = self.base
        for suffix in ("/v1", "/openai"):
            root = root.removesuffix(suffix)
        self.root = root
        self.deployment = deployment
        self.api_version = api_version

    def headers(self, with_key: bool = True) -> dict[str, str]:
        h = {"Content-Type": "application/json"}
        if with_key and self.api_key:
            h["api-key"] = self.api_key
        return h

    def models_url(self) -> str:
        return f"{self.root}/openai/models?api-version={self.api_version}"

    def chat_url(self) -> str:
        return f"{self.root}/openai/deployments/{self.deployment}/chat/completions?api-version={self.api_version}"

    def body(self, messages, *, sampling, max_tokens, stream=False, tools=True) -> dict:
        b = super().body(messages, sampling=sampling, max_tokens=max_tokens, stream=stream, tools=tools)
        b.pop("model", None)  # the deployment in the path names the model
        return b


class AnthropicStyle:
    """Anthropic messages (/v1/messages): tool_use blocks, x-api-key (and Bearer off Anthropic's own API)."""

    name = "anthropic"

    def __init__(self, base_url: str, model: str, api_key: str | None):
        self.root = base_url.rstrip("/").removesuffix("/v1")
        self.model = model
        self.api_key = api_key
        host = urlsplit(self.root).hostname or ""
        # vLLM, llama-server and gateways read Bearer; Anthropic's API reads x-api-key only.
        self.bearer_too = not host.endswith("anthropic.com")

    def headers(self, with_key: bool = True) -> dict[str, str]:
        h = {"Content-Type": "application/json", "anthropic-version": ANTHROPIC_VERSION}
        if with_key and self.api_key:
            h["x-api-key"] = self.api_key
            if self.bearer_too:
                h["Authorization"] = f"Bearer {self.api_key}"
        return h

    def models_url(self) -> str:
        return f"{self.root}/v1/models"

    def chat_url(self) -> str:
        return f"{self.root}/v1/messages"

    def body(self, messages, *, sampling, max_tokens, stream=False, tools=True) -> dict:
        b: dict = {"model": self.model, "max_tokens": max_tokens, "messages": messages}
        if tools:
            b["tools"] = [{"name": TOOL_NAME, "description": TOOL_DESCRIPTION, "input_schema": TOOL_PARAMETERS}]
            b["tool_choice"] = {"type": "auto"}
        b.update({k: v for k, v in sampling.items() if k in ANTHROPIC_SAMPLING})
        if stream:
            b["stream"] = True
        return b

    def ask(self) -> list[dict]:
        return [{"role": "user", "content": QUESTION}]

    def round_trip(self, call: ToolCall) -> list[dict]:
        args = call.arguments_obj if isinstance(call.arguments_obj, dict) else _loads_or(call.arguments, {})
        return [
            {"role": "user", "content": QUESTION},
            {"role": "assistant", "content": [{"type": "tool_use", "id": call.id, "name": call.name, "input": args}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id,
                                          "content": json.dumps(TOOL_RESULT)}]},
        ]

    def filler(self, text: str) -> list[dict]:
        return [{"role": "user", "content": text}]

    def model_ids(self, data) -> list[str] | None:
        return OpenAIStyle.model_ids(self, data)

    _FINISH = {"tool_use": "tool_calls", "end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length"}

    def _blocks(self, r: Reply, blocks) -> None:
        for b in blocks or []:
            kind = (b or {}).get("type")
            if kind == "text":
                r.content += b.get("text") or ""
            elif kind in ("thinking", "redacted_thinking"):
                r.reasoning += b.get("thinking") or b.get("data") or ""
            elif kind == "tool_use":
                inp = b.get("input")
                r.tool_calls.append(ToolCall(id=str(b.get("id") or ""), name=str(b.get("name") or ""),
                                             arguments=inp if isinstance(inp, str) else json.dumps(inp),
                                             arguments_obj=inp))

    def parse(self, status: int, data) -> Reply:
        r = Reply(status=status)
        if status != 200:
            r.error = error_message(data) or (json.dumps(data)[:300] if data is not None else None)
            return r
        if not isinstance(data, dict) or not isinstance(data.get("content"), list):
            r.shape_ok = False
            r.error = error_message(data)
            return r
        stop = data.get("stop_reason")
        r.finish = self._FINISH.get(stop, stop)
        self._blocks(r, data["content"])
        return r

    def parse_stream(self, lines) -> Reply:
        r = Reply(status=200, stream_done=False)
        blocks: dict[int, dict] = {}
        partial: dict[int, str] = {}
        for payload in _sse_data(lines):
            try:
                ev = json.loads(payload)
            except ValueError:
                r.shape_ok = False
                r.error = f"unparsable stream event: {payload[:120]}"
                continue
            r.events += 1
            kind = ev.get("type")
            if kind == "content_block_start":
                blocks[ev.get("index", len(blocks))] = dict(ev.get("content_block") or {})
            elif kind == "content_block_delta":
                i, d = ev.get("index", 0), ev.get("delta") or {}
                blk = blocks.setdefault(i, {"type": "text", "text": ""})
                if d.get("type") == "text_delta":
                    blk["text"] = (blk.get("text") or "") + (d.get("text") or "")
                elif d.get("type") == "thinking_delta":
                    blk["thinking"] = (blk.get("thinking") or "") + (d.get("thinking") or "")
                elif d.get("type") == "input_json_delta":
                    partial[i] = partial.get(i, "") + (d.get("partial_json") or "")
            elif kind == "message_delta":
                stop = (ev.get("delta") or {}).get("stop_reason")
                if stop:
                    r.finish = self._FINISH.get(stop, stop)
            elif kind == "message_stop":
                r.stream_done = True
            elif kind == "error":
                r.error = error_message(ev)
        for i, text in partial.items():
            blk = blocks.get(i, {})
            if blk.get("type") == "tool_use":
                blk["input"] = text  # the assembled raw JSON: the checks parse it
        self._blocks(r, [blocks[i] for i in sorted(blocks)])
        for tc in r.tool_calls:
            tc.arguments_obj = None
        return r


def _loads_or(text: str, default):
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return default


def _sse_data(lines):
    """The data payloads of a server-sent event stream (multi-line data joined)."""
    buf: list[str] = []
    for line in lines:
        line = line.rstrip("\r")
        if not line:
            if buf:
                yield "\n".join(buf)
                buf = []
            continue
        if line.startswith("data:"):
            buf.append(line[5:].lstrip(" "))
    if buf:
        yield "\n".join(buf)


def make_style(api_style: str, base_url: str, model: str, api_key: str | None, *,
               azure_deployment: str | None = None, azure_api_version: str | None = None):
    if api_style == "openai":
        return OpenAIStyle(base_url, model, api_key)
    if api_style == "anthropic":
        return AnthropicStyle(base_url, model, api_key)
    if api_style == "azure":
        from launcher.errors import InputError

        if not (azure_deployment and azure_api_version):
            raise InputError("api_style azure needs the deployment name and the api-version",
                             fix="give openai.deployment and openai.api_version in the recipe "
                                 "(launch validate: --deployment and --api-version)")
        return AzureStyle(base_url, model, api_key, azure_deployment, azure_api_version)
    from launcher.errors import InputError

    raise InputError(f"unknown api_style {api_style!r}", fix="use one of: openai, anthropic, azure")
