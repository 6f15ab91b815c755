"""Recipe and inventory checks that keep a plan from being one vLLM (or launch's readiness watch) would
trip over after a long model load; the inventory's cluster_address; secret env references; the agent
provider id. Facts: ../shared/reference/vllm.md."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from launcher.errors import SpecError
from launcher.plan import build_for
from launcher.spec.load import load_recipe
from conftest import run_launch

PAIR = """\
name: pair
hosts:
  a:
    address: 10.1.0.1
    ssh: {user: u}
    gpus: {count: GPUS}
    interface: eth9
  b:
    address: 10.1.0.2
    ssh: {user: u}
    gpus: {count: GPUS}
    interface: eth9
"""


def _inventory(tmp_path: Path, text: str = PAIR, gpus: int = 1) -> Path:
    p = tmp_path / "inv.yaml"
    p.write_text(text.replace("GPUS", str(gpus)))
    return p


def _recipe(tmp_path: Path, body: str, *, name: str = "r", inv: Path | None = None) -> Path:
    head = f"name: {name}\nengine: vllm\nmodel: org/model\n"
    if inv is not None:
        head += f"hosts: {inv}\nruntime: docker\nimage: vllm/vllm-openai:v0.11.0\n"
    p = tmp_path / f"{name}.yaml"
    p.write_text(head + textwrap.dedent(body))
    return p


def _problems(exc: SpecError) -> str:
    return exc.render()


# ------------------------------------------------------------ 1. extra_args may not set managed flags

@pytest.mark.parametrize("args,flag,instead", [
    (["--port", "9000"], "--port", "`port:`"),
    (["--port=9000"], "--port", "`port:`"),
    (["--served-model-name", "foo"], "--served-model-name", "`served_name:`"),
    (["--host", "127.0.0.1"], "--host", "0.0.0.0"),
    (["--max_model_len=4096"], "--max-model-len", "vllm.max_model_len"),  # vLLM reads _ as -
    (["-tp", "2"], "-tp", "parallelism.tensor"),
    (["--pipeline-parallel-size", "2"], "--pipeline-parallel-size", "parallelism.tensor"),
    (["--distributed-executor-backend=mp"], "--distributed-executor-backend", "parallelism.backend"),
    (["--headless"], "--headless", "parallelism.nodes"),
    (["--kv-cache-dtype", "fp8"], "--kv-cache-dtype", "vllm.kv_cache_dtype"),
    (["--reasoning-parser-plugin", "/p.py"], "--reasoning-parser-plugin", "vllm.reasoning_parser_plugin"),
])
def test_extra_args_cannot_override_what_launch_sets(tmp_path, args, flag, instead):
    r = _recipe(tmp_path, f"vllm:\n  extra_args: {json.dumps(['--enforce-eager', *args])}\n")
    with pytest.raises(SpecError) as e:
        load_recipe(str(r))
    text = _problems(e.value)
    assert f"vllm.extra_args sets {flag}," in text and instead in text
    assert e.value.where == f"{r}:5"


def test_extra_args_that_launch_does_not_manage_pass_through(tmp_path):
    r = _recipe(tmp_path, 'vllm:\n  extra_args: ["--enforce-eager", "--max-num-batched-tokens", "8192"]\n')
    _, plan = build_for(str(r))
    assert plan.head().argv[-3:] == ["--enforce-eager", "--max-num-batched-tokens", "8192"]
    assert plan.head().argv.count("--port") == 1


def test_api_key_in_extra_args_keeps_its_ps_warning(tmp_path):
    r = _recipe(tmp_path, 'vllm:\n  extra_args: ["--api-key=abc"]\n')
    with pytest.raises(SpecError) as e:
        load_recipe(str(r))
    assert "visible in `ps`" in _problems(e.value)
    assert "abc" not in _problems(e.value)


# ------------------------------------------------------------ 2. parallelism and kv_cache_dtype

@pytest.mark.parametrize("tensor,nodes", [(1, 2), (3, 2)])
def test_tensor_must_split_evenly_over_the_nodes(tmp_path, tensor, nodes):
    inv = _inventory(tmp_path, gpus=2)
    r = _recipe(tmp_path, f"parallelism: {{tensor: {tensor}, nodes: {nodes}, backend: mp}}\n", inv=inv)
    with pytest.raises(SpecError) as e:
        build_for(str(r))
    assert f"parallelism.tensor is {tensor} over {nodes} nodes" in _problems(e.value)


def test_ray_waiting_for_more_gpus_than_vllm_uses_is_refused(tmp_path):
    """Launch waits for every inventory GPU to join Ray; TP 2 on two 2-GPU hosts would use half."""
    inv = _inventory(tmp_path, gpus=2)
    r = _recipe(tmp_path, "parallelism: {tensor: 2, nodes: 2, backend: ray}\n", inv=inv)
    with pytest.raises(SpecError) as e:
        build_for(str(r))
    text = _problems(e.value)
    assert "Ray cluster of a, b has 4 GPUs" in text and "set parallelism.tensor to 4" in text
    ok = _recipe(tmp_path, "parallelism: {tensor: 4, nodes: 2, backend: ray}\n", name="ok", inv=inv)
    assert build_for(str(ok))[1].head().argv.count("--tensor-parallel-size") == 1


def test_mp_may_use_part_of_each_node_but_not_more_than_it_has(tmp_path):
    uneven = _inventory(tmp_path, PAIR.replace("{count: GPUS}", "{count: 4}", 1).replace("GPUS", "1"))
    ok = _recipe(tmp_path, "parallelism: {tensor: 2, nodes: 2, backend: mp}\n", name="ok", inv=uneven)
    head, worker = build_for(str(ok))[1].processes
    assert "--headless" in worker.argv
    short = _recipe(tmp_path, "parallelism: {tensor: 4, nodes: 2, backend: mp}\n", name="short", inv=uneven)
    with pytest.raises(SpecError) as e:
        build_for(str(short))
    assert "puts 2 rank(s) on each node, but b has 1 GPU(s)" in _problems(e.value)


def test_kv_cache_dtype_is_checked_against_vllms_choices(tmp_path):
    for wrong, meant in (("fp8-e4m3", "fp8_e4m3"), ("bf16", "bfloat16"), ("fp9", "fp8")):
        bad = _recipe(tmp_path, f"vllm: {{kv_cache_dtype: {wrong}}}\n", name="bad")
        with pytest.raises(SpecError) as e:
            load_recipe(str(bad))
        assert f"'{wrong}' is not a KV cache dtype vLLM knows" in _problems(e.value)
        assert f"did you mean '{meant}'" in _problems(e.value)
    for good in ("auto", "fp8", "fp8_e5m2", "bfloat16", "nvfp4"):
        r = _recipe(tmp_path, f"vllm: {{kv_cache_dtype: {good}}}\n", name=f"g-{good}")
        assert f"--kv-cache-dtype {good}" in build_for(str(r))[1].head().command


# ------------------------------------------------------------ 3. a custom tool parser from a plugin

def test_tool_parser_plugin_is_planned_and_lifts_the_registry_check(tmp_path):
    r = _recipe(tmp_path, """\
        vllm:
          enable_auto_tool_choice: true
          tool_parser_plugin: /plugins/my_parser.py
          tool_call_parser: my_parser
        """)
    argv = build_for(str(r))[1].head().argv
    i = argv.index("--tool-parser-plugin")
    assert argv[i + 1] == "/plugins/my_parser.py"
    assert argv[i + 2:i + 4] == ["--tool-call-parser", "my_parser"]  # the plugin registers it first


# ------------------------------------------------------------ 4. cluster_address

def test_cluster_address_carries_ray_nccl_and_master_addr_but_not_ssh_or_the_api(isolated, tmp_path):
    text = PAIR.replace("address: 10.1.0.1", "address: spark-1.lan\n    cluster_address: 192.168.100.10") \
               .replace("address: 10.1.0.2", "address: spark-2.lan\n    cluster_address: 192.168.100.11")
    inv = _inventory(tmp_path, text)
    for backend in ("ray", "mp"):
        r = _recipe(tmp_path, f"parallelism: {{tensor: 2, nodes: 2, backend: {backend}}}\n", name=backend, inv=inv)
        plan = build_for(str(r))[1]
        assert plan.base_url == "http://spark-1.lan:8000/v1"
        assert [p.address for p in plan.processes if p.host == "a"][0] == "spark-1.lan"  # ssh goes here
        assert plan.hosts["a"]["address"] == "spark-1.lan"
        for p in plan.processes:
            ip = "192.168.100.10" if p.host == "a" else "192.168.100.11"
            assert p.env["VLLM_HOST_IP"] == ip and p.env["MASTER_ADDR"] == "192.168.100.10"
            assert not any("spark-" in a for a in p.argv), p.argv
        if backend == "ray":
            head, worker, _ = plan.processes
            assert "--node-ip-address=192.168.100.10" in head.argv
            assert worker.argv[3:] == ["--address=192.168.100.10:6379", "--node-ip-address=192.168.100.11"]
        else:
            assert all(p.argv[p.argv.index("--master-addr") + 1] == "192.168.100.10" for p in plan.processes)


def test_plan_hash_unchanged_for_inventories_without_cluster_address(isolated, tmp_path):
    """Pinned: computed with the launcher before cluster_address existed. A deployment started then is
    still attached (same hash), not restarted."""
    inv = _inventory(tmp_path)
    want = {"ray": "eaff449b78a2c455", "mp": "d436e9faca3b4e20"}
    for backend, h in want.items():
        p = tmp_path / f"r-{backend}.yaml"
        p.write_text(f"""name: pinned
engine: vllm
model: org/model
served_name: org/served
hosts: {inv}
runtime: docker
image: vllm/vllm-openai:v0.11.0
parallelism: {{tensor: 2, nodes: 2, backend: {backend}}}
vllm:
  max_model_len: 32768
  kv_cache_dtype: fp8
  enable_auto_tool_choice: true
  tool_call_parser: hermes
env: {{VLLM_ALLOW_LONG_MAX_MODEL_LEN: "1"}}
api_key: {{env: VLLM_API_KEY}}
""")
        assert build_for(str(p))[1].hash == h, backend


def test_cluster_address_is_normalised_and_changes_the_hash(isolated, tmp_path):
    base = _recipe(tmp_path, "parallelism: {tensor: 2, nodes: 2}\n", name="base", inv=_inventory(tmp_path))
    before = build_for(str(base))[1].hash
    (tmp_path / "inv.yaml").write_text(PAIR.replace("GPUS", "1").replace(
        "address: 10.1.0.2", "address: 10.1.0.2\n    cluster_address: ' fd00::0002 '"))
    plan = build_for(str(base))[1]
    assert plan.processes[1].env["VLLM_HOST_IP"] == "fd00::2"
    assert plan.hash != before


# ------------------------------------------------------------ 5. secret env references

def test_secret_env_reference_is_planned_by_name_and_source_never_value(isolated, tmp_path):
    inv = _inventory(tmp_path)
    r = _recipe(tmp_path, """\
        parallelism: {tensor: 2, nodes: 2}
        env:
          HF_TOKEN: {env: HF_TOKEN}
          VLLM_LOGGING_LEVEL: INFO
        api_key: {env: VLLM_API_KEY}
        """, inv=inv)
    plan = build_for(str(r))[1]
    assert plan.secret_env["HF_TOKEN"].env == "HF_TOKEN"
    assert plan.secret_env_where == {"HF_TOKEN": f"{r}:9"}  # for the error when it cannot be read
    for p in plan.processes:  # every node downloads weights
        assert p.secret_env["HF_TOKEN"] == "env:HF_TOKEN"
        assert "HF_TOKEN" not in p.env and p.env["VLLM_LOGGING_LEVEL"] == "INFO"
        if p.container:
            assert "HF_TOKEN" in p.container.secret_env and "HF_TOKEN" not in p.container.env
    assert plan.head().secret_env["VLLM_API_KEY"] == "env:VLLM_API_KEY"
    assert "VLLM_API_KEY" not in plan.processes[1].secret_env  # a Ray worker has no API to protect
    secret = "hf_live_value_never_printed_0123456789"
    out = run_launch("plan", str(r), env={"HF_TOKEN": secret})
    assert out.returncode == 0, out.stderr
    assert "HF_TOKEN=<secret from env:HF_TOKEN>" in out.stdout and secret not in out.stdout + out.stderr
    js = run_launch("plan", str(r), "--json", env={"HF_TOKEN": secret + "x"})
    assert secret not in js.stdout
    assert json.loads(js.stdout)["hash"] in out.stdout  # the value never reaches the hash


def test_a_malformed_secret_reference_names_the_fix(tmp_path):
    r = _recipe(tmp_path, "env:\n  HF_TOKEN: {env: HF_TOKEN, file: /t}\n")
    with pytest.raises(SpecError) as e:
        load_recipe(str(r))
    assert e.value.where == f"{r}:5"
    assert "env.HF_TOKEN: give exactly one of env: NAME, file: PATH" in _problems(e.value)


# ------------------------------------------------------------ 7. one agent provider per recipe

def test_each_recipe_gets_its_own_provider_id(tmp_path):
    a = load_recipe(str(_recipe(tmp_path, "", name="Nemotron.Big_1"))).spec.agent.provider
    b = load_recipe(str(_recipe(tmp_path, "", name="qwen3-coder"))).spec.agent.provider
    assert (a, b) == ("launch-nemotron-big_1", "launch-qwen3-coder")
    own = load_recipe(str(_recipe(tmp_path, "agent: {provider: mine}\n", name="x"))).spec.agent.provider
    assert own == "mine"


def test_shipped_recipes_have_distinct_provider_ids(isolated):
    from launcher.spec.load import available

    ids = [load_recipe(name).spec.agent.provider for name in available("recipe")]
    assert len(ids) == len(set(ids)) and "launcher" not in ids
