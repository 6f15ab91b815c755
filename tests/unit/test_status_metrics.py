"""`launch status` figures from vLLM's /metrics (names per ../shared/reference/vllm.md)."""
from launcher.status import kv_usage_percent, parse_metrics, tokens_per_second

TEXT = """# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.125
vllm:num_requests_running{engine="0",model_name="m"} 2.0
vllm:num_requests_waiting{engine="0",model_name="m"} 1.0
vllm:generation_tokens_total{engine="0",model_name="m"} 1000.0
vllm:cache_config_info{block_size="16",num_gpu_blocks="573"} 1.0
"""


def test_parse_and_derive():
    m = parse_metrics(TEXT)
    assert m["vllm:num_requests_running"] == 2 and kv_usage_percent(m) == 12.5
    later = parse_metrics(TEXT.replace("1000.0", "1250.0"))
    assert tokens_per_second(m, later, 0.5) == 500.0


def test_older_metric_name_and_missing():
    assert kv_usage_percent(parse_metrics("vllm:gpu_cache_usage_perc 0.5\n")) == 50.0
    assert kv_usage_percent({}) is None and tokens_per_second({}, {}, 1.0) is None
