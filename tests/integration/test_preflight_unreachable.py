"""Hosts whose Docker daemon is reached over ssh:// and whose ssh does not answer: launch finds no
deployment to attach to, then preflight names every host with the real cause (ssh, not "Docker") and
a fix, in one list, without starting anything. 127.0.0.2/127.0.0.3 with a closed port stand for
machines whose sshd is down (connection refused)."""
from __future__ import annotations

from conftest import free_port, run_launch


def test_every_unreachable_ssh_docker_host_is_listed_with_its_cause(isolated):
    port = free_port()  # nothing listens here
    inv = isolated / "two.yaml"
    inv.write_text(f"""name: two
hosts:
  node-a: {{address: 127.0.0.2, ssh: {{port: {port}}}, gpus: {{count: 1}}}}
  node-b: {{address: 127.0.0.3, ssh: {{port: {port}}}, gpus: {{count: 1}}}}
""")
    recipe = isolated / "r.yaml"
    recipe.write_text(f"""name: twonode
engine: vllm
model: org/m
hosts: {inv}
runtime: docker
image: vllm/vllm-openai:latest
parallelism: {{tensor: 2, nodes: 2, backend: mp}}
""")
    proc = run_launch("up", str(recipe), timeout=120)
    assert proc.returncode == 1, proc.stderr
    err = proc.stderr
    assert "preflight found 2 problems" in err, err
    for node, addr in (("node-a", "127.0.0.2"), ("node-b", "127.0.0.3")):
        assert f"{node}: not reachable over ssh" in err and f"ssh {addr}" in err, err
    assert "Traceback" not in err
