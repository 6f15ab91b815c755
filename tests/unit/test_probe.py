"""Probe parsers on real nvidia-smi / /proc/meminfo / ss output, and NVML through fakes.

This machine has no GPU: the NVML paths are exercised with fake pynvml modules that raise pynvml's
own error classes (NotSupported as on a DGX Spark's GB10, LibraryNotFound as with no driver)."""
from __future__ import annotations

import socket
import types

import pynvml
import pytest

from launcher.probe import (HostFacts, NoGpu, hf_model_dir, local_port_free, nvml_gpus, parse_meminfo,
                            parse_nvidia_smi, parse_proc_net_tcp, parse_remote, parse_ss_ports, probe_local,
                            probe_remote)
from launcher.runtimes.base import CommandResult

H100_SMI = """0, NVIDIA H100 80GB HBM3, 81559, 0, 81004
1, NVIDIA H100 80GB HBM3, 81559, 70214, 10790
"""
GB10_SMI = "0, NVIDIA GB10, [N/A], [N/A], [N/A]\n"
NOT_SUPPORTED_SMI = "0, NVIDIA GB10, [Not Supported], [Not Supported], [Not Supported]\n"
MEMINFO = """MemTotal:       128438604 kB
MemFree:         2301244 kB
MemAvailable:   119847312 kB
Buffers:          123456 kB
Cached:         90000000 kB
HugePages_Total:       0
"""
SS = """LISTEN 0      4096         0.0.0.0:8000      0.0.0.0:*
LISTEN 0      128          127.0.0.1:6379    0.0.0.0:*
LISTEN 0      128             [::]:22           [::]:*
LISTEN 0      4096   127.0.0.53%lo:53        0.0.0.0:*
"""
PROC_NET_TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1
   1: 0100007F:18EB 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 2 1
"""


def test_nvidia_smi_h100():
    gpus = parse_nvidia_smi(H100_SMI)
    assert [(g.index, g.name, g.memory_total_mib, g.memory_used_mib, g.memory_free_mib, g.unified) for g in gpus] == [
        (0, "NVIDIA H100 80GB HBM3", 81559, 0, 81004, False), (1, "NVIDIA H100 80GB HBM3", 81559, 70214, 10790, False)]


@pytest.mark.parametrize("text", [GB10_SMI, NOT_SUPPORTED_SMI])
def test_nvidia_smi_unified_memory(text):
    (g,) = parse_nvidia_smi(text)
    assert g.name == "NVIDIA GB10" and g.unified and g.memory_total_mib is None and g.memory_free_mib is None


def test_nvidia_smi_error_text_is_no_gpu():
    assert parse_nvidia_smi("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.") == []


def test_meminfo_ss_and_proc_net_tcp():
    info = parse_meminfo(MEMINFO)
    assert info["MemAvailable"] == 119847312 and info["HugePages_Total"] == 0
    assert parse_ss_ports(SS) == {8000, 6379, 22, 53}
    assert parse_proc_net_tcp(PROC_NET_TCP) == {8000}  # the second row is ESTABLISHED


def test_hf_model_dir():
    assert hf_model_dir("nvidia/NVIDIA-Nemotron-3-Super-120B-A12B-NVFP4", "/data/hf/") == \
        "/data/hf/hub/models--nvidia--NVIDIA-Nemotron-3-Super-120B-A12B-NVFP4"


def _fake_nvml(*, memory_error=None, init_error=None, count=1):
    mem = types.SimpleNamespace(total=80 * 2**30, free=60 * 2**30, used=20 * 2**30)

    def get_mem(h):
        if memory_error:
            raise memory_error
        return mem

    def init():
        if init_error:
            raise init_error

    return types.SimpleNamespace(
        NVMLError=pynvml.NVMLError, NVML_ERROR_NOT_SUPPORTED=pynvml.NVML_ERROR_NOT_SUPPORTED,
        nvmlInit=init, nvmlShutdown=lambda: None, nvmlDeviceGetCount=lambda: count,
        nvmlDeviceGetHandleByIndex=lambda i: i, nvmlDeviceGetName=lambda h: b"NVIDIA GB10",
        nvmlDeviceGetMemoryInfo=get_mem)


def test_nvml_memory_and_not_supported_falls_back_to_meminfo(tmp_path):
    assert [(g.memory_total_mib, g.memory_free_mib) for g in nvml_gpus(_fake_nvml())] == [(81920, 61440)]
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(MEMINFO)
    nvml = _fake_nvml(memory_error=pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED))
    facts = probe_local("spark", nvml=nvml, meminfo_path=str(meminfo))
    (g,) = facts.gpus
    assert g.unified and facts.unified and facts.ok
    assert g.memory_free_mib == facts.mem_available_mib == 119847312 // 1024
    assert g.memory_total_mib == 128438604 // 1024
    other = _fake_nvml(memory_error=pynvml.NVMLError(pynvml.NVML_ERROR_UNKNOWN))
    with pytest.raises(pynvml.NVMLError):
        nvml_gpus(other)


def test_no_driver_is_a_result_not_a_crash():
    nvml = _fake_nvml(init_error=pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND))
    with pytest.raises(NoGpu):
        nvml_gpus(nvml)
    facts = probe_local("box", nvml=nvml)
    assert not facts.ok and "no NVIDIA GPU/driver" in facts.errors[0].what and facts.errors[0].fix
    assert "no NVIDIA GPU/driver" in probe_local("box", nvml=_fake_nvml(count=0)).errors[0].what
    # this machine really has no driver: the real pynvml path reports the same, without raising
    real = probe_local("here")
    assert real.gpus or any("no NVIDIA GPU/driver" in e.what for e in real.errors)


def test_local_ports_vllm_and_weights(tmp_path, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        assert not local_port_free(busy)
        monkeypatch.setenv("PATH", str(tmp_path))
        (tmp_path / "hub" / "models--org--have").mkdir(parents=True)
        facts = probe_local("here", ports=[busy], need_gpu=False, need_vllm=True, models=["org/have", "org/miss"],
                            hf_cache=str(tmp_path))
    assert facts.busy_ports == [busy] and f"port {busy}" in facts.errors[0].what
    assert any("`vllm` is not on PATH" in e.what for e in facts.errors)
    assert facts.weights == {"org/have": True, "org/miss": False}
    assert [w.what for w in facts.warnings] == ["org/miss is not in the Hugging Face cache on here"]


def _remote_output(smi: str, rc: int = 0, vllm: str = "/usr/local/bin/vllm", has=()) -> str:
    return ("@@smi\n" + smi + f"@@smi-rc {rc}\n@@meminfo\n" + MEMINFO + "@@ss\n" + SS + "@@vllm\n" + vllm + "\n"
            + "".join(f"@@has {h}\n" for h in has) + "@@end\n")


def test_remote_gb10_unified_ports_weights():
    out = _remote_output(GB10_SMI, has=["/home/nvidia/.cache/huggingface/hub/models--org--m"])
    facts = parse_remote("spark-1", out, ports=[8000, 9000], need_vllm=True,
                         models={"org/m": "~/.cache/huggingface/hub/models--org--m",
                                 "org/x": "~/.cache/huggingface/hub/models--org--x"})
    (g,) = facts.gpus
    assert g.unified and g.memory_free_mib == 119847312 // 1024
    assert facts.busy_ports == [8000] and len(facts.errors) == 1
    assert facts.vllm_path == "/usr/local/bin/vllm"
    assert facts.weights == {"org/m": True, "org/x": False}


def test_remote_failures():
    facts = parse_remote("h", _remote_output("sh: 1: nvidia-smi: not found\n", rc=127, vllm=""), need_vllm=True)
    assert [e.what for e in facts.errors] == ["no NVIDIA GPU/driver on h (nvidia-smi not found)",
                                              "`vllm` is not on PATH on h"]
    facts = parse_remote("h", _remote_output("", rc=124))
    assert "nvidia-smi timed out" in facts.errors[0].what

    def unreachable(host, argv, timeout):
        return CommandResult(255, "", "ssh: connect to host 10.0.0.9 port 22: Connection refused\n")

    facts = probe_remote("h", {"address": "10.0.0.9"}, unreachable)
    assert not facts.reachable and "cannot reach h over ssh (ssh: connect" in facts.errors[0].what
    assert isinstance(facts, HostFacts) and facts.to_json()["reachable"] is False
