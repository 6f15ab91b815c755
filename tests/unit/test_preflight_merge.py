"""Preflight lists: one entry per distinct cause (the same warning on every host is printed once)."""
from launcher.preflight import Problem, merge


def test_same_problem_on_two_hosts_listed_once():
    w = "the weights of org/m are not in the HF cache (~/.cache/huggingface/hub/models--org--m)"
    got = merge([Problem("spark-1", w, "huggingface-cli download org/m", "warning"),
                 Problem("spark-1", "port 8000 is already in use", "stop it"),
                 Problem("spark-2", w, "huggingface-cli download org/m", "warning")])
    assert [p.render() for p in got] == [
        f"spark-1, spark-2: {w} (fix: huggingface-cli download org/m)",
        "spark-1: port 8000 is already in use (fix: stop it)"]


def test_different_causes_stay_apart():
    got = merge([Problem("a", "x", "f"), Problem("b", "x", "g"), Problem("a", "x", "f", "warning")])
    assert len(got) == 3
