"""vLLM: the serve command for a plan (single node, Ray or multiprocessing across nodes).

Facts: ../shared/reference/vllm.md. The seed's serve command for Nemotron 3 Super is reproduced
flag for flag from a recipe; two-node tensor parallelism adds what Ray or mp needs.
"""
from __future__ import annotations

from launcher.engines.base import Engine, NodeCtx, ProcSpec
from launcher.engines.vllm_logs import (  # noqa: F401 - log line -> Stage/Failure, re-exported
    Failure, LogReader, Stage, classify, exit_failure, parse_stage, ray_worker_missing, timeout_failure)

RAY_PORT = 6379


def serve_argv(recipe, port: int) -> list[str]:
    """`vllm serve MODEL …` with every flag the recipe asks for. No secrets: the key goes by env."""
    v = recipe.vllm
    argv = ["vllm", "serve", recipe.model]
    if recipe.served_name:
        argv += ["--served-model-name", recipe.served_name]
    argv += ["--host", "0.0.0.0", "--port", str(port)]
    if v.trust_remote_code:
        argv.append("--trust-remote-code")
    if v.kv_cache_dtype:
        argv += ["--kv-cache-dtype", v.kv_cache_dtype]
    if v.max_model_len is not None:
        argv += ["--max-model-len", str(v.max_model_len)]
    if v.gpu_memory_utilization is not None:
        argv += ["--gpu-memory-utilization", f"{v.gpu_memory_utilization:g}"]
    if v.enable_chunked_prefill:
        argv.append("--enable-chunked-prefill")
    if v.enable_prefix_caching is True:
        argv.append("--enable-prefix-caching")
    elif v.enable_prefix_caching is False:
        argv.append("--no-enable-prefix-caching")
    if v.max_num_seqs is not None:
        argv += ["--max-num-seqs", str(v.max_num_seqs)]
    if v.enable_auto_tool_choice:
        argv.append("--enable-auto-tool-choice")
    if v.tool_parser_plugin:
        argv += ["--tool-parser-plugin", v.tool_parser_plugin]
    if v.tool_call_parser:
        argv += ["--tool-call-parser", v.tool_call_parser]
    if v.reasoning_parser_plugin:
        argv += ["--reasoning-parser-plugin", v.reasoning_parser_plugin]
    if v.reasoning_parser:
        argv += ["--reasoning-parser", v.reasoning_parser]
    argv += list(v.extra_args)
    return argv


def _node_env(node: NodeCtx, head: NodeCtx) -> dict[str, str]:
    env = {"VLLM_HOST_IP": node.ip, "MASTER_ADDR": head.ip}
    if node.interface:
        for var in ("NCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME", "UCX_NET_DEVICES", "TP_SOCKET_IFNAME"):
            env[var] = node.interface
    return env


class Vllm(Engine):
    name = "vllm"
    api_key_env = "VLLM_API_KEY"
    default_port = 8000

    @staticmethod
    def log_reader() -> LogReader:
        """A fresh stateful reader: feed(line) -> [Stage | Failure]."""
        return LogReader()

    def processes(self, recipe, nodes: list[NodeCtx], port: int) -> list[ProcSpec]:
        par = recipe.parallelism
        base = serve_argv(recipe, port)
        if par.tensor > 1:
            base += ["--tensor-parallel-size", str(par.tensor)]
        head = nodes[0]
        if len(nodes) == 1:
            return [ProcSpec("server", head.name, "server", base, port=port)]
        if par.backend == "ray":
            procs = [ProcSpec("ray-head", head.name, "ray-head",
                              ["ray", "start", "--block", "--head", f"--node-ip-address={head.ip}",
                               f"--port={RAY_PORT}"], env=_node_env(head, head), port=RAY_PORT, ready="ray")]
            for i, node in enumerate(nodes[1:], start=1):
                procs.append(ProcSpec(f"ray-worker-{i}", node.name, "ray-worker",
                                      ["ray", "start", "--block", f"--address={head.ip}:{RAY_PORT}",
                                       f"--node-ip-address={node.ip}"], env=_node_env(node, head), ready="none"))
            procs.append(ProcSpec("server", head.name, "server",
                                  base + ["--distributed-executor-backend", "ray"], env=_node_env(head, head),
                                  port=port, exec_in="ray-head"))
            return procs
        # multiprocessing across nodes: head serves, the others run headless
        n = str(len(nodes))
        procs = [ProcSpec("server", head.name, "server",
                          base + ["--nnodes", n, "--node-rank", "0", "--master-addr", head.ip],
                          env=_node_env(head, head), port=port)]
        for i, node in enumerate(nodes[1:], start=1):
            procs.append(ProcSpec(f"worker-{i}", node.name, "worker",
                                  base + ["--nnodes", n, "--node-rank", str(i), "--master-addr", head.ip,
                                          "--headless"], env=_node_env(node, head), ready="none"))
        return procs


ENGINE = Vllm()
