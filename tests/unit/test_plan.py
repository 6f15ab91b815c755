"""The launch plan: exact commands, env names (secrets masked), ports, and a stable hash."""
from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from launcher.plan import build_for
from conftest import run_launch

# The seed's serve command (../shared/reference/vllm.md), flag for flag.
SEED = shlex.split("""vllm serve nvidia/NVIDIA-Nemotron-3-Super-120B-A12B-NVFP4
  --served-model-name nvidia/nemotron-3-super --host 0.0.0.0 --port 8000
  --trust-remote-code --kv-cache-dtype fp8 --max-model-len 262144
  --gpu-memory-utilization 0.85 --enable-chunked-prefill
  --enable-auto-tool-choice --tool-call-parser qwen3_coder --reasoning-parser nemotron_v3""")


def _flags(argv: list[str]) -> dict[str, str | None]:
    out, i = {}, 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("--"):
            nxt = argv[i + 1] if i + 1 < len(argv) else None
            if nxt is not None and not nxt.startswith("--"):
                out[a] = nxt
                i += 2
                continue
            out[a] = None
        i += 1
    return out


def test_nemotron_head_runs_every_seed_flag_plus_two_node_tp(isolated):
    _, plan = build_for("nemotron")
    server = plan.head()
    assert server.argv[:3] == SEED[:3]
    flags = _flags(server.argv)
    for k, v in _flags(SEED).items():
        assert flags.get(k, "MISSING") == v, k
    assert flags["--tensor-parallel-size"] == "2"
    assert flags["--distributed-executor-backend"] == "ray"
    # Ray across the two Sparks: head container, a worker joining it, vLLM exec'd in the head
    roles = [(p.name, p.host, p.role) for p in plan.processes]
    assert roles == [("ray-head", "spark-1", "ray-head"), ("ray-worker-1", "spark-2", "ray-worker"),
                     ("server", "spark-1", "server")]
    assert server.exec_in == "ray-head"
    worker = plan.processes[1]
    # the nodes talk over the ConnectX-7 link (cluster_address); launch reaches them by address
    assert "--address=192.168.100.10:6379" in worker.argv and "--node-ip-address=192.168.100.11" in worker.argv
    assert worker.address == "spark-2.local" and plan.base_url == "http://spark-1.local:8000/v1"
    for p in plan.processes:
        assert p.env["NCCL_SOCKET_IFNAME"] == "enp1s0f0np0" and p.env["GLOO_SOCKET_IFNAME"] == "enp1s0f0np0"
        assert p.env["MASTER_ADDR"] == "192.168.100.10"
        assert p.env["VLLM_HOST_IP"] == {"spark-1": "192.168.100.10", "spark-2": "192.168.100.11"}[p.host]
    head_c = plan.processes[0].container
    assert head_c.network_mode == "host" and head_c.ipc_mode == "host" and head_c.gpus == "all"
    assert head_c.labels == {"launcher.recipe": "nemotron", "launcher.role": "ray-head",
                             "launcher.plan-hash": plan.hash}
    # the key goes by environment only
    assert server.secret_env == {"VLLM_API_KEY": "env:VLLM_API_KEY"}
    assert not any("api-key" in a for a in server.argv)


def test_plan_hash_is_stable_and_changes_with_what_runs(isolated, tmp_path):
    _, a = build_for("nemotron")
    _, b = build_for("nemotron")
    assert a.hash == b.hash and len(a.hash) == 16
    src = (Path(__file__).resolve().parents[2] / "recipes" / "nemotron.yaml").read_text()
    (tmp_path / "hosts").mkdir()
    (tmp_path / "hosts" / "dgx.yaml").write_text(
        (Path(__file__).resolve().parents[2] / "hosts" / "dgx.yaml").read_text())
    cosmetic = tmp_path / "cosmetic.yaml"
    cosmetic.write_text(src.replace("description: Nemotron", "description: My Nemotron")
                        .replace("hosts: dgx", f"hosts: {tmp_path / 'hosts' / 'dgx.yaml'}"))
    assert build_for(str(cosmetic))[1].hash == a.hash
    changed = tmp_path / "changed.yaml"
    changed.write_text(src.replace("max_model_len: 262144", "max_model_len: 131072"))
    assert build_for(str(changed))[1].hash != a.hash


def test_plan_cli_prints_commands_masked_secrets_and_json(isolated):
    proc = run_launch("plan", "nemotron", env={"VLLM_API_KEY": "sk-super-secret-value-123"})
    assert proc.returncode == 0, proc.stderr
    assert "sk-super-secret" not in proc.stdout + proc.stderr
    assert "VLLM_API_KEY=<secret from env:VLLM_API_KEY>" in proc.stdout
    assert "--reasoning-parser nemotron_v3 --tensor-parallel-size 2 --distributed-executor-backend ray" in proc.stdout
    js = run_launch("plan", "nemotron", "--json")
    data = json.loads(js.stdout)
    assert data["hash"] and data["base_url"] == "http://spark-1.local:8000/v1"
    assert [p["name"] for p in data["processes"]] == ["ray-head", "ray-worker-1", "server"]
    # --dry-run on the main command prints exactly the plan and starts nothing
    dry = run_launch("nemotron", "--dry-run")
    assert dry.returncode == 0 and dry.stdout == proc.stdout


@pytest.mark.parametrize("name,engine,first", [
    ("qwen3-coder", "ollama", ["ollama", "serve"]),
    ("lmstudio-qwen3-coder", "lmstudio", ["lms", "server", "start"]),
    ("llamacpp-qwen3-coder", "llamacpp", ["llama-server", "-m"]),
    ("qwen3-coder-vllm", "vllm", ["vllm", "serve", "Qwen/Qwen3-Coder-30B-A3B-Instruct-FP8"]),
])
def test_every_shipped_recipe_plans(isolated, name, engine, first):
    _, plan = build_for(name)
    assert plan.engine == engine
    assert plan.head().argv[:len(first)] == first


def test_mp_backend_runs_headless_workers(isolated, tmp_path):
    src = (Path(__file__).resolve().parents[2] / "recipes" / "nemotron.yaml").read_text()
    r = tmp_path / "mp.yaml"
    r.write_text(src.replace("backend: ray", "backend: mp").replace(
        "hosts: dgx", f"hosts: {Path(__file__).resolve().parents[2] / 'hosts' / 'dgx.yaml'}"))
    _, plan = build_for(str(r))
    head, worker = plan.processes
    assert _flags(head.argv)["--node-rank"] == "0" and "--headless" not in head.argv
    assert _flags(worker.argv)["--node-rank"] == "1" and "--headless" in worker.argv
    assert _flags(worker.argv)["--master-addr"] == "192.168.100.10"


def test_recipes_lists_shipped_and_local_recipes_first(isolated, tmp_path):
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "nemotron.yaml").write_text(
        "name: nemotron\ndescription: my own\nengine: openai\nmodel: m\nopenai: {base_url: 'http://127.0.0.1:9/v1'}\n")
    proc = run_launch("recipes", "--json", cwd=tmp_path)
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert rows["nemotron"]["engine"] == "openai"  # ./recipes wins over the shipped one
    assert {"qwen3-coder", "lmstudio-qwen3-coder", "llamacpp-qwen3-coder", "qwen3-coder-vllm"} <= set(rows)


def test_a_local_docker_host_follows_DOCKER_HOST(monkeypatch):
    """Rootless Docker, Docker Desktop and Colima export DOCKER_HOST; the docker CLI and SDK use it."""
    from launcher.spec.inventory import Host

    h = Host(address="localhost")
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    assert h.docker_url("me") == "unix:///var/run/docker.sock"
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/user/1000/docker.sock")
    assert h.docker_url("me") == "unix:///run/user/1000/docker.sock"
    assert Host(address="localhost", docker="tcp://10.0.0.9:2375").docker_url("me") == "tcp://10.0.0.9:2375"
