"""The symptom -> cause -> fix table, as data.

Rows come from the seed's table (../shared/reference/agents.md, "The seed's validation") plus the
request-time failures vLLM and gateways really return (../shared/reference/vllm.md, "HTTP" and
"Failure text"). `launch validate` names each failed check by one of these ids; the text is what the
user reads, so it says what to do.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    id: str
    symptom: str
    cause: str
    fix: str


_ROWS = (
    # -- the seed's table --
    Row("unauthorized", "models list body has no `data` (HTTP 401/403)",
        "401: missing or wrong Authorization",
        "send `Authorization: Bearer $KEY` with the server's key (launch validate --key-env VAR; "
        "recipe api_key)"),
    Row("model-not-found", "model not found",
        "config key ≠ `--served-model-name`",
        "use the id from `/v1/models` (recipe served_name, or --model)"),
    Row("length", "`finish_reason: length`, no tool call",
        "reasoning used the output budget",
        "raise max_tokens (2048–4096 for the check; limit.output for the agent)"),
    Row("prose-tool-call", "tool call described in prose, `tool_calls` null",
        "tool parser not active or wrong",
        "`--enable-auto-tool-choice` + the model's `--tool-call-parser` (llama-server: `--jinja` and a "
        "tool-capable chat template)"),
    Row("reasoning-in-args", "reasoning text inside tool arguments",
        "reasoning parser wrong or missing",
        "the model's `--reasoning-parser`"),
    Row("invalid-json-args", "arguments not valid JSON",
        "parser/model mismatch",
        "re-run; then another `--tool-call-parser`"),
    Row("tool-loop", "the tool is called again after its result",
        "tool-result turn not consumed",
        "check the `tool_call_id` echo and the chat template (it must render `role: tool` messages)"),
    Row("forced-quantization", "quant/kernel error at start",
        "forced `--quantization`",
        "drop it: pre-quantized (NVFP4/FP8) checkpoints carry their own quant config"),
    Row("proxy-drops", "reachable on localhost, not through the proxy",
        "reverse proxy drops `/v1/*` or the POST body",
        "fix the proxy: forward every path under /v1 and the request body (and `Content-Length`)"),
    # -- request-time failures seen in the field --
    Row("no-auto-tool-choice", "HTTP 400 \"auto\" tool choice requires --enable-auto-tool-choice",
        "tool parser not active",
        "`--enable-auto-tool-choice` + the model's `--tool-call-parser`"),
    Row("reasoning-in-content", "reasoning text (<think>…) inside the answer's content",
        "reasoning parser wrong or missing",
        "the model's `--reasoning-parser`"),
    Row("wrong-tool", "a tool that was not offered was called",
        "tool parser/model mismatch",
        "check `--tool-call-parser` matches the model's chat template"),
    Row("ignored-result", "answer does not use the tool result",
        "the tool result never reached the model (chat template drops `role: tool`, or the id echo is lost)",
        "check the chat template renders tool results; test with the model's official template"),
    Row("stream-broken", "streamed tool-call deltas do not assemble into the same call",
        "the tool parser's streaming path is broken for this model",
        "try the model's other tool parser, or a newer server; agents always stream"),
    Row("stream-malformed", "the streamed response is not valid server-sent events",
        "a proxy buffers or rewrites the stream, or the server does not stream",
        "let the proxy pass `text/event-stream` unbuffered (nginx: `proxy_buffering off`)"),
    Row("auth-open", "the server answers without a key",
        "no API key enforced: anyone who reaches the port can use the model",
        "set a key (vLLM: VLLM_API_KEY; llama-server: --api-key) and a recipe api_key, "
        "or keep the port on a private network"),
    Row("context-rejected", "a prompt just under limit.context is refused",
        "the server accepts less context than the derived limit",
        "lower agent.context (or raise the server's max model length); `launch fit RECIPE` shows the figures"),
    Row("unreachable", "no connection to the endpoint",
        "the server is not running, or base_url/port is wrong, or a firewall is in the way",
        "start the server (`launch up RECIPE`), check base_url (it ends at /v1) and the port"),
    Row("not-found", "HTTP 404 for an API path",
        "base_url does not end at the API root (/v1), or a proxy does not forward the path",
        "point base_url at …/v1 (never the full /chat/completions path); fix the proxy's routes"),
    Row("bad-response", "a reply that is not the API's JSON shape",
        "not an endpoint of this API style, or a proxy answers instead of the server",
        "check base_url and api_style (openai | anthropic | azure)"),
    Row("http-error", "an unexpected HTTP status",
        "the server refused the request",
        "read the evidence (status and message); check the server's log"),
    Row("timeout", "no answer in time",
        "the server is overloaded, still loading, or a long prompt is slow to prefill",
        "retry when the server is idle; raise --timeout"),
)

TABLE: dict[str, Row] = {r.id: r for r in _ROWS}


def lookup(symptom_id: str) -> Row:
    """The table row for an id. Unknown ids raise KeyError naming the valid ones."""
    try:
        return TABLE[symptom_id]
    except KeyError:
        raise KeyError(f"unknown symptom {symptom_id!r}; known: {', '.join(sorted(TABLE))}") from None


def seed_rows() -> list[Row]:
    """The rows of the seed's table, in its order (for docs and `launch validate --help`)."""
    return list(_ROWS[:9])
