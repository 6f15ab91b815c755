"""Bounded waits on a fake clock, the rate meter, the reporter, and free-memory parsing."""
from __future__ import annotations

import pytest

from launcher.bringup.laptop_common import RateMeter, Reporter, wait_until
from launcher.errors import InputError, ServerFailed
from launcher.laptop_mem import parse_size


class FakeClock:
    def __init__(self):
        self.t = 0.0
        self.slept: list[float] = []

    def now(self):
        return self.t

    def sleep(self, s):
        self.slept.append(s)
        self.t += s


def test_wait_until_returns_the_probe_result_and_backs_off():
    clock = FakeClock()
    answers = iter([None, None, None, "ready"])
    assert wait_until(lambda: next(answers), timeout=10, clock=clock, what="x", where="u", fix="f") == "ready"
    assert clock.slept == [0.1, 0.2, 0.4]


def test_wait_until_times_out_with_the_log_tail():
    clock = FakeClock()
    with pytest.raises(ServerFailed) as e:
        wait_until(lambda: None, timeout=5, clock=clock, what="srv", where="u", fix="f",
                   log_tail=lambda: ["last line"])
    assert "not ready after 5 s" in e.value.what and e.value.log_tail == ["last line"]
    assert clock.t == pytest.approx(5.0)


def test_wait_until_stops_when_the_process_dies():
    clock = FakeClock()
    with pytest.raises(ServerFailed) as e:
        wait_until(lambda: None, timeout=600, clock=clock, what="srv", where="u", fix="f",
                   died=lambda: "exited with code 1" if clock.t > 0.5 else None)
    assert "exited with code 1" in e.value.what and clock.t < 2


def test_rate_meter():
    clock = FakeClock()
    m = RateMeter(clock)
    assert m.update(0) is None
    clock.t = 1.0
    assert m.update(1000) == 1000.0
    clock.t = 2.0
    assert m.update(3000) == 1500.0


def test_reporter_feeds_a_watch_progress():
    class P:
        def __init__(self):
            self.stages, self.notes = [], []

        def stage(self, st, elapsed):
            self.stages.append((st.name, st.percent, st.detail))

        def note(self, text):
            self.notes.append(text)

        def close(self):
            raise AssertionError("not ours to close")

    p = P()
    r = Reporter(p, FakeClock())
    r.step("pull", "pulling abc", completed=512 * 1024 ** 2, total=1024 ** 3, rate=50 * 1024 ** 2)
    r.warn("small context")
    r.close()
    assert p.stages == [("pull", 50.0, "pulling abc  512.0 MiB/1.0 GiB  50.0 MiB/s")]
    assert p.notes == ["warning: small context"]


@pytest.mark.parametrize("text,n", [("1024", 1024), ("24G", 24 * 1024 ** 3), ("1.5GiB", int(1.5 * 1024 ** 3)),
                                    ("512m", 512 * 1024 ** 2)])
def test_parse_size(text, n):
    assert parse_size(text) == n


def test_parse_size_rejects_garbage():
    with pytest.raises(InputError):
        parse_size("lots")
