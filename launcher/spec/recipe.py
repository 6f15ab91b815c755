"""The recipe: how to serve one model and which agent to put on top."""
from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from launcher.spec.keysource import KeySource
from launcher.spec.shape import ModelShape

Engine = Literal["vllm", "ollama", "lmstudio", "llamacpp", "openai"]
Runtime = Literal["local", "ssh", "docker"]
ENGINES = ("vllm", "ollama", "lmstudio", "llamacpp", "openai")
RUNTIMES = ("local", "ssh", "docker")
DEFAULT_PORTS = {"vllm": 8000, "ollama": 11434, "lmstudio": 1234, "llamacpp": 8080, "openai": 443}



def provider_id(recipe_name: str) -> str:
    """The agent provider id a recipe gets by default: `launch-<name>`, lower-case, [a-z0-9_-] only, so
    that two recipes merged into one agent config keep separate provider blocks."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", recipe_name.lower()).strip("-") or "recipe"
    return f"launch-{slug}"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Parallelism(Strict):
    tensor: int = Field(default=1, ge=1)
    nodes: int = Field(default=1, ge=1)
    backend: Literal["ray", "mp"] = "ray"


class VllmOptions(Strict):
    max_model_len: int | Literal["auto"] | None = None
    gpu_memory_utilization: float | None = Field(default=None, gt=0, le=1)
    kv_cache_dtype: str | None = None
    enable_chunked_prefill: bool = False
    enable_prefix_caching: bool | None = None
    trust_remote_code: bool = False
    enable_auto_tool_choice: bool = False
    tool_call_parser: str | None = None
    reasoning_parser: str | None = None
    reasoning_parser_plugin: str | None = None
    tool_parser_plugin: str | None = None  # a .py registering a custom tool parser; tool_call_parser names it
    max_num_seqs: int | None = Field(default=None, ge=1)
    extra_args: list[str] = Field(default_factory=list)


class OllamaOptions(Strict):
    context: int | Literal["auto"] = "auto"
    keep_alive: str | None = None
    num_parallel: int = Field(default=1, ge=1)
    kv_cache_type: Literal["f16", "q8_0", "q4_0"] | None = None


class LmStudioOptions(Strict):
    context: int | Literal["auto"] = "auto"
    gpu: str | float | None = None  # "max", "off" or a ratio 0..1


class LlamaCppOptions(Strict):
    gguf: str
    ctx: int = Field(default=65536, ge=256)
    parallel: int = Field(default=1, ge=1)
    cache_type_k: Literal["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1"] | None = None
    cache_type_v: Literal["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1"] | None = None
    flash_attn: Literal["on", "off", "auto"] | None = None
    extra_args: list[str] = Field(default_factory=list)


class OpenAIAttach(Strict):
    """A server launcher does not start: any OpenAI-compatible endpoint or gateway."""

    base_url: str
    api_style: Literal["openai", "anthropic", "azure"] = "openai"
    deployment: str | None = None  # Azure: the deployment name in the path
    api_version: str | None = None  # Azure: ?api-version=

    @model_validator(mode="after")
    def _azure_needs(self):
        if self.api_style == "azure" and not (self.deployment and self.api_version):
            raise ValueError("api_style azure needs deployment and api_version")
        return self


class Sampling(BaseModel):
    """Sampling pinned for the agent (merged into each request body). Extra keys pass through."""

    model_config = ConfigDict(extra="allow")

    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = None
    min_p: float | None = None
    presence_penalty: float | None = None
    repetition_penalty: float | None = None


class AgentSpec(Strict):
    name: Literal["opencode", "codex", "claude", "none"] = "opencode"
    provider: str | None = None  # default: launch-<recipe name>, one provider block per recipe
    output: int = Field(default=32000, ge=256, description="output budget (max_tokens)")
    sessions: int = Field(default=1, ge=1, description="agent sessions sharing the server")
    context: int | Literal["auto"] = "auto"
    reasoning: bool | None = None  # default: true when the recipe names a reasoning parser


class Recipe(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    description: str = ""
    engine: Engine
    model: str
    served_name: str | None = None
    hosts: str | None = None  # an inventory name or path
    runtime: Runtime = "local"
    image: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    parallelism: Parallelism = Field(default_factory=Parallelism)
    vllm: VllmOptions | None = None
    ollama: OllamaOptions | None = None
    lmstudio: LmStudioOptions | None = None
    llamacpp: LlamaCppOptions | None = None
    openai: OpenAIAttach | None = None
    env: dict[str, str | KeySource] = Field(default_factory=dict)  # a value or a secret reference
    api_key: KeySource | None = None
    sampling: Sampling = Field(default_factory=Sampling)
    agent: AgentSpec = Field(default_factory=AgentSpec)
    shape: ModelShape | None = None
    startup_timeout: float = Field(default=1800, gt=0, description="seconds to wait for readiness")

    @field_validator("api_key", mode="before")
    @classmethod
    def _key_is_a_reference(cls, value):
        if isinstance(value, str):
            raise ValueError("this is the secret itself, written inline; reference it instead: "
                             "`api_key: {env: VLLM_API_KEY}` (or file: PATH / command: \"…\")")
        return value

    @model_validator(mode="after")
    def _default_provider(self):
        if self.agent.provider is None:
            self.agent.provider = provider_id(self.name)
        return self

    @model_validator(mode="after")
    def _engine_block(self):
        blocks = {e: getattr(self, e) for e in ENGINES}
        for other, block in blocks.items():
            if block is not None and other != self.engine:
                raise ValueError(f"a `{other}:` block does not belong to engine {self.engine}; "
                                 f"rename it to `{self.engine}:` or remove it")
        if self.engine == "vllm" and self.vllm is None:
            self.vllm = VllmOptions()
        if self.engine == "ollama" and self.ollama is None:
            self.ollama = OllamaOptions()
        if self.engine == "lmstudio" and self.lmstudio is None:
            self.lmstudio = LmStudioOptions()
        if self.engine == "llamacpp" and self.llamacpp is None:
            raise ValueError("engine llamacpp needs a `llamacpp:` block with at least `gguf: PATH`")
        if self.engine == "openai" and self.openai is None:
            raise ValueError("engine openai (attach-only) needs an `openai:` block with `base_url`")
        return self

    @property
    def plain_env(self) -> dict[str, str]:
        """env: entries that are values (what a plan may show)."""
        return {k: v for k, v in self.env.items() if isinstance(v, str)}

    @property
    def secret_env(self) -> dict[str, KeySource]:
        """env: entries that reference a secret (resolved at start time, never shown or hashed as values)."""
        return {k: v for k, v in self.env.items() if isinstance(v, KeySource)}

    # -- derived values (read-only helpers; the plan is where decisions are recorded) --
    @property
    def served(self) -> str:
        return self.served_name or self.model

    @property
    def effective_port(self) -> int:
        return self.port or DEFAULT_PORTS[self.engine]

    @property
    def is_reasoning(self) -> bool:
        if self.agent.reasoning is not None:
            return self.agent.reasoning
        return bool(self.vllm and self.vllm.reasoning_parser)
