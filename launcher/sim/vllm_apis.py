"""Anthropic Messages and OpenAI Responses on the simulated vLLM (filled in below)."""
from __future__ import annotations
