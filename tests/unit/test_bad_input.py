"""The bad-input corpus: every broken recipe or inventory exits 2 with one message naming
file:line, the field and the fix — and never a traceback (those need --debug)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import run_launch

CORPUS = Path(__file__).resolve().parent.parent / "bad_input"

# file -> (line the message must point at, texts the message must contain)
RECIPES = {
    "yaml-syntax.yaml": (6, ["YAML syntax error", "fix:"]),
    "missing-field.yaml": (1, ["model", "Field required", "add `model:`"]),
    "wrong-type.yaml": (5, ["vllm.max_model_len", "'lots' is not valid", "a valid integer"]),
    "unknown-key.yaml": (5, ["vllm: unknown key 'max_model_length'", "did you mean 'max_model_len'"]),
    "unknown-engine.yaml": (2, ["engine", "'tgi' is not allowed", "'vllm'", "'llamacpp'"]),
    "unknown-runtime.yaml": (4, ["runtime", "'podman' is not allowed", "'docker'"]),
    "tensor-too-large.yaml": (8, ["parallelism.tensor is 4", "2 GPU(s)", "lower parallelism.tensor to 2"]),
    "unknown-inventory.yaml": (4, ["hosts: no inventory named 'dgx-cluster-9'", "did you mean 'dgx'"]),
    "bad-parser.yaml": (6, ["vllm.tool_call_parser", "'qwen3coder'", "did you mean 'qwen3_coder'"]),
    "inline-secret-env.yaml": (5, ["env.VLLM_API_KEY", "secret written inline", "api_key: {env: VLLM_API_KEY}"]),
    "inline-secret-key.yaml": (4, ["api_key", "the secret itself, written inline", "{env: VLLM_API_KEY}"]),
    "managed-extra-arg.yaml": (7, ["vllm.extra_args sets --port", "which launch writes itself", "(and its value)", "set `port:`"]),
    "managed-extra-arg-equals.yaml": (6, ["vllm.extra_args sets --served-model-name", "set `served_name:`"]),
    "tensor-below-nodes.yaml": (7, ["parallelism.tensor is 1 over 2 nodes", "a multiple of 2"]),
    "bad-kv-cache-dtype.yaml": (5, ["vllm.kv_cache_dtype", "'fp9'", "did you mean 'fp8'"]),
    "inline-hf-token.yaml": (5, ["env.HF_TOKEN", "secret written inline", "gated weights",
                                 "huggingface-cli download meta-llama/Llama-3.1-8B-Instruct"]),
    "custom-tool-parser-no-plugin.yaml": (7, ["vllm.extra_args sets --tool-parser-plugin",
                                              "set `vllm.tool_parser_plugin`"]),
    "bad-inventory-ref.yaml": (6, ["unknown-host-key.yaml", "hosts.node-1: unknown key 'gpu'", "did you mean 'gpus'"]),
}

INVENTORIES = {
    "missing-address.yaml": (3, ["hosts.node-1.address", "Field required"]),
    "bad-cluster-address.yaml": (5, ["hosts.node-1.cluster_address", "'node-1-cx7' is not an IP address",
                                     "ConnectX-7"]),
    "bad-power-driver.yaml": (6, ["hosts.node-1.power.driver", "'kasa-smart' is not allowed", "'shelly'"]),
}


def _check(proc, path: Path, line: int, texts: list[str]) -> None:
    err = proc.stderr
    assert proc.returncode == 2, (proc.returncode, err)
    assert "Traceback" not in err and "Traceback" not in proc.stdout
    assert re.search(rf"{re.escape(path.name)}:{line}\b", err), err
    for t in texts:
        assert t in err, (t, err)
    assert "fix:" in err, err


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_broken_recipe_exits_2_with_file_line_field_fix(name, isolated):
    line, texts = RECIPES[name]
    path = CORPUS / "recipes" / name
    proc = run_launch("plan", str(path))
    # the inventory's problems point into the inventory file
    target = CORPUS / "hosts" / "unknown-host-key.yaml" if name == "bad-inventory-ref.yaml" else path
    _check(proc, target, line, texts)


@pytest.mark.parametrize("name", sorted(INVENTORIES))
def test_broken_inventory_exits_2(name, isolated, tmp_path):
    line, texts = INVENTORIES[name]
    inv = CORPUS / "hosts" / name
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: r\nengine: vllm\nmodel: org/m\nhosts: {inv}\nruntime: ssh\n")
    _check(run_launch("plan", str(recipe)), inv, line, texts)


def test_inline_hf_token_is_not_advised_to_become_the_api_key(isolated):
    """HF_TOKEN is what vLLM downloads gated weights with; making it vLLM's API key would lock every
    client out (and hand the Hub token to every agent config)."""
    proc = run_launch("plan", str(CORPUS / "recipes" / "inline-hf-token.yaml"))
    assert proc.returncode == 2
    assert "api_key: {env: HF_TOKEN}" not in proc.stderr
    assert "hf_abcdefghijklmnop" not in proc.stderr + proc.stdout


def test_key_command_that_fails_exits_2_before_anything_starts(isolated):
    # attaching: the key is read first, and its error points at the recipe's api_key line
    path = CORPUS / "recipes" / "key-command-fails-attach.yaml"
    proc = run_launch(str(path), "--agent", "none")
    _check(proc, path, 4, ["API key command failed (exit 3)", "permission denied"])


def test_key_command_that_fails_is_listed_with_the_preflight_problems(isolated):
    """A server launch starts checks the key with preflight, so every problem shows in one run: the
    key source is named (never a value), with the command's message and the fix; exit 2, nothing started."""
    path = CORPUS / "recipes" / "key-command-fails.yaml"
    proc = run_launch(str(path), "--agent", "none")
    err = proc.stderr
    assert proc.returncode == 2, (proc.returncode, err)
    assert "Traceback" not in err + proc.stdout
    assert "preflight found" in err
    assert re.search(r"key-command-fails\.yaml:4: api_key \(command\)", err), err
    assert "api_key (command): the API key command failed (exit 3): vault: permission denied" in err, err
    assert "fix the source's command:" in err


def test_debug_shows_the_traceback(isolated):
    proc = run_launch("--debug", "plan", str(CORPUS / "recipes" / "unknown-key.yaml"))
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr


def test_every_problem_in_a_file_is_listed_at_once(isolated, tmp_path):
    bad = tmp_path / "many.yaml"
    bad.write_text("name: many\nengine: vllm\nmodel: m\nport: huge\nvllm:\n  max_num_seqs: -1\n  bogus: 1\n")
    proc = run_launch("plan", str(bad))
    assert proc.returncode == 2
    assert "many.yaml:4" in proc.stderr and "many.yaml:6" in proc.stderr and "many.yaml:7" in proc.stderr
