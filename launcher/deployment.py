"""What a running deployment is, once launched or attached: the data later stages consume."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Capacity:
    """What the server measured (the truth; formulas are for before the start)."""

    kv_tokens: int | None = None  # tokens the KV pool holds (vLLM: C x M on the newer line)
    max_concurrency: float | None = None  # requests of max_model_len that fit at once
    max_model_len: int | None = None  # the longest request (prompt + output) the server accepts
    slots: int | None = None  # llama-server parallel slots
    source: str = ""  # where the figures came from, e.g. "vllm log", "/metrics", "/props"


@dataclass
class Limits:
    context: int
    output: int
    reasoning: str = ""  # how the figure was derived, printed for the user


@dataclass
class Deployment:
    recipe: str
    engine: str
    base_url: str  # ends at /v1
    model: str  # the served id, as /v1/models returns it
    plan_hash: str
    attached: bool = False
    capacity: Capacity = field(default_factory=Capacity)
    limits: Limits | None = None
    version: str | None = None
    api_key_env: str | None = None  # the variable the agent should read the key from
    reasoning: bool | None = None  # the server says the model reasons (Ollama "thinking"); None: not reported

    @property
    def root_url(self) -> str:
        return self.base_url.removesuffix("/v1")

    def to_json(self) -> dict:
        cap = self.capacity
        return {
            "recipe": self.recipe,
            "engine": self.engine,
            "base_url": self.base_url,
            "model": self.model,
            "plan_hash": self.plan_hash,
            "attached": self.attached,
            "version": self.version,
            "capacity": {"kv_tokens": cap.kv_tokens, "max_concurrency": cap.max_concurrency,
                         "max_model_len": cap.max_model_len, "source": cap.source},
            "limits": ({"context": self.limits.context, "output": self.limits.output,
                        "reasoning": self.limits.reasoning} if self.limits else None),
        }


def as_dict(obj) -> dict:
    return asdict(obj)
