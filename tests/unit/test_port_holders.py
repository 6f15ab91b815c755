"""deploy.port_holders: which of launch's own deployments (from the notes in the state dir) serve or
listen on a host and port; the same port on another host is someone else's."""
from __future__ import annotations

from types import SimpleNamespace

from launcher import deploy


def _plan(recipe, address, port, ray_port=None):
    procs = [SimpleNamespace(address=address, port=port, docker_url=None, host="h")]
    if ray_port:
        procs.append(SimpleNamespace(address=address, port=ray_port, docker_url=None, host="h"))
    return SimpleNamespace(recipe=recipe, recipe_path="/r.yaml", endpoint=f"http://{address}:{port}",
                           served_name="m", hash="abc", runtime="ssh", api_key=None, hosts={}, processes=procs)


def test_port_holders_match_host_and_port(isolated):
    deploy.remember(_plan("nemotron", "10.0.0.5", 8000, ray_port=6379))
    deploy.remember(_plan("local-one", "127.0.0.1", 8001))
    assert deploy.port_holders("10.0.0.5", 8000) == ["nemotron"]
    assert deploy.port_holders("10.0.0.5", 6379) == ["nemotron"]  # its Ray head's port too
    assert deploy.port_holders("10.0.0.6", 8000) == []  # another host
    assert deploy.port_holders("10.0.0.5", 8000, exclude="nemotron") == []
    assert deploy.port_holders("local", 8001) == ["local-one"]
    assert deploy.port_holders("localhost", 8001) == ["local-one"]
    deploy.forget_deployment("nemotron")
    assert deploy.port_holders("10.0.0.5", 8000) == []
