"""The model's shape: what `launch fit` needs to estimate memory offline.

Field names follow Hugging Face config.json where one exists. Shipped recipes carry this block so
that fit works without downloading anything; a config.json found locally takes precedence.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class MambaShape(BaseModel):
    model_config = ConfigDict(extra="forbid")

    layers: int = Field(ge=0)
    heads: int = Field(ge=1)
    head_dim: int = Field(ge=1)
    state_size: int = Field(ge=1)
    n_groups: int = 1
    conv_kernel: int = 4
    state_dtype_bytes: float = 4.0  # fp32 SSM state by default
    conv_dtype_bytes: float = 2.0  # the conv state is kept in the model dtype (bf16)


class MlaShape(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kv_lora_rank: int = Field(ge=1)
    qk_rope_head_dim: int = Field(ge=0)


class ModelShape(BaseModel):
    """Architecture facts about a model (per model, not per GPU)."""

    model_config = ConfigDict(extra="forbid")

    architecture: str | None = None
    layers: int = Field(ge=1, description="all decoder layers (num_hidden_layers)")
    attention_layers: int | None = Field(default=None, ge=0,
                                         description="layers that hold KV per token (hybrids); default: layers")
    kv_heads: int = Field(ge=1)
    head_dim: int = Field(ge=1)
    v_head_dim: int | None = None
    sliding_window: int | None = Field(default=None, ge=1)
    sliding_layers: int = Field(default=0, ge=0, description="layers that use the sliding window")
    mla: MlaShape | None = None
    mamba: MambaShape | None = None
    trained_context: int | None = Field(default=None, ge=1)
    weights_gib: float | None = Field(default=None, ge=0, description="checkpoint size on disk/GPU")
    params_b: float | None = None
