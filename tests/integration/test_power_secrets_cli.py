"""-v output never shows a power credential: a separate Python process sets up logging exactly as
`launch -v` does (the CLI's root callback), then drives a password-protected simulated Tasmota plug
on 127.0.0.1 through the tasmota driver. httpx logs every request's full URL at INFO; the password
must reach the plug and appear in no form (raw, URL-encoded, JSON, base64) on stderr."""
from __future__ import annotations

import base64
import json
import subprocess
import sys
from urllib.parse import quote, quote_plus

PW = "s3cr3t-Plug!@&"

CHILD = r"""
import os, sys
from launcher.cli.main import _root
from launcher.power import Power
from launcher.power.tasmota import TasmotaDriver

_root(debug=False, verbose=int(sys.argv[2]))          # the logging setup `launch -v` / `-vv` runs
d = TasmotaDriver(sys.argv[1], password=os.environ["PLUG_PW"], timeout=5)
p = Power(d, poll=0.05, confirm_timeout=5, off_wait=0.05, log=lambda m: print(m, file=sys.stderr))
r = p.reboot()
print("RESULT", r.ok, " | ".join(r.sent), file=sys.stderr)
"""


def _forms(secret: str) -> list[str]:
    return [secret, quote(secret, safe=""), quote(secret), quote_plus(secret), json.dumps(secret)[1:-1],
            base64.b64encode(f"admin:{secret}".encode()).decode()]


def test_verbose_logging_never_prints_the_tasmota_password(isolated):
    from launcher.sim.plug import make

    with make("tasmota", password=PW) as plug:
        for verbose in ("1", "2"):
            r = subprocess.run([sys.executable, "-c", CHILD, plug.url, verbose], capture_output=True, text=True,
                               timeout=60, env={**__import__("os").environ, "PLUG_PW": PW})
            assert r.returncode == 0, r.stderr[-3000:]
            assert "RESULT True" in r.stderr, r.stderr[-3000:]
            assert "HTTP Request: GET" in r.stderr  # httpx did log each request's URL ...
            assert "password=[set]" in r.stderr
            assert [f for f in _forms(PW) if f in r.stdout + r.stderr] == [], r.stderr[-3000:]  # ... masked
        # the plug got the real password on every request (it answers 401 otherwise)
        assert plug.requests and all(q["query"].get("password") == PW for q in plug.requests)
        assert [on for _t, on in plug.changes] == [False, True, False, True]
