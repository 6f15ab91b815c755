"""Power credentials never show in what a driver records, its errors, the journal or log lines, in
any encoding (raw, URL-encoded, JSON-escaped, base64 basic auth); ipmi and command pass them through
the environment only."""
from __future__ import annotations

import base64
import io
import json
import logging
import os
import stat
from urllib.parse import quote, quote_plus

import httpx
import pytest

from launcher.power import FakeClock, Power, PowerError
from launcher.power.command import CommandDriver
from launcher.power.homeassistant import HomeAssistantDriver
from launcher.power.ipmi import IpmiDriver
from launcher.power.redfish import RedfishDriver
from launcher.power.shelly import ShellyDriver
from launcher.power.tasmota import TasmotaDriver

# `!`, `@`, `&`, space, `/` and `"` all change under URL encoding or JSON escaping
PW = 's3cr3t-Plug! @&/"x'


def forms(secret: str, user: str | None = None) -> list[str]:
    out = [secret, quote(secret, safe=""), quote(secret), quote_plus(secret), json.dumps(secret)[1:-1]]
    if user:
        out.append(base64.b64encode(f"{user}:{secret}".encode()).decode())
    return out


def leaks(text: str, secret: str = PW, user: str | None = None) -> list[str]:
    return [f for f in forms(secret, user) if f in text]


class Tasmota:
    """A Tasmota plug behind httpx.MockTransport: checks the password like the firmware does."""

    def __init__(self, password: str, fail: int = 0):
        self.password, self.fail, self.on, self.urls = password, fail, True, []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.urls.append(str(request.url))
        q = request.url.params
        if q.get("password") != self.password:
            return httpx.Response(401, json={"WARNING": "Need user=<username>&password=<password>"})
        if self.fail:
            self.fail -= 1
            return httpx.Response(500, text=f"error handling {request.url}")  # a device echoing the URL
        cmnd = q.get("cmnd", "")
        if cmnd.endswith(" Off"):
            self.on = False
        elif cmnd.endswith(" On"):
            self.on = True
        return httpx.Response(200, json={"POWER": "ON" if self.on else "OFF"})


def tasmota(password=PW, **kw):
    dev = Tasmota(password, **kw)
    return dev, TasmotaDriver("plug.lan", password=password, client=httpx.Client(transport=httpx.MockTransport(dev)))


def test_tasmota_records_password_as_set_and_still_sends_it():
    dev, d = tasmota()
    res = Power(d, clock=FakeClock(), off_wait=0).reboot()
    assert res.ok and res.off_confirmed
    # the plug got the real password (URL-encoded) ...
    assert all(f"password={quote(PW, safe='')}" in u for u in dev.urls)
    # ... while every recorded request says [set], in no encoding the value
    assert res.sent and all("password=[set]&" in s for s in res.sent)
    assert leaks(" ".join(res.sent)) == []


def test_tasmota_error_echoing_the_url_is_masked():
    dev, d = tasmota(fail=10)
    with pytest.raises(PowerError) as e:
        Power(d, clock=FakeClock(), retries=1, retry_wait=0).off()
    text = e.value.render() if hasattr(e.value, "render") else str(e.value)
    assert "HTTP 500" in text and leaks(text) == []


def test_journal_masks_every_form_of_a_driver_secret(tmp_path):
    from launcher.watchdog.journal import Journal

    TasmotaDriver("plug.lan", password=PW, client=httpx.Client(transport=httpx.MockTransport(Tasmota(PW))))
    out = io.StringIO()
    j = Journal(tmp_path / "j.jsonl", console=out, wall=lambda: 0.0)
    j.write("cycle", "n1", ok=True, message="x", sent=[f"GET /cm?password={f}" for f in forms(PW)])
    j.close()
    text = (tmp_path / "j.jsonl").read_text() + out.getvalue()
    assert "cycle" in text and leaks(text) == []


@pytest.mark.parametrize("make,user", [
    (lambda: ShellyDriver("p", password=PW), "admin"),
    (lambda: ShellyDriver("p", generation=1, username="u1", password=PW), "u1"),
    (lambda: TasmotaDriver("p", username="u2", password=PW), "u2"),
    (lambda: HomeAssistantDriver("ha", entity_id="switch.n1", token=PW), None),
    (lambda: RedfishDriver("bmc", password=PW), "root"),
    (lambda: IpmiDriver("bmc", username="ADMIN", password=PW, runner=lambda *a: (0, "", "")), "ADMIN"),
    (lambda: CommandDriver({"state": "true", "on": "true", "off": "true"}, password=PW, username="u3"), "u3"),
])
def test_every_driver_masks_raw_url_encoded_json_and_basic_auth_forms(make, user):
    d = make()
    text = " | ".join(f"<{f}>" for f in forms(PW, user))
    masked = d.mask(text)
    assert leaks(masked, user=user) == [] and masked.count("[set]") == len(forms(PW, user))


def test_mask_hides_credential_url_parts_it_was_not_told_about():
    d = ShellyDriver("p")
    text = d.mask("GET http://admin:other-pw-77@plug/cm?user=admin&password=other-pw-77&cmnd=Power "
                  "Authorization: Bearer tok-xyz-123 ?token=t0k3n-abc&key=k3y-abc")
    for s in ("other-pw-77", "tok-xyz-123", "t0k3n-abc", "k3y-abc"):
        assert s not in text
    assert "cmnd=Power" in text and "user=admin" in text and "plug/cm" in text


# -- log lines (-v): httpx prints full URLs --------------------------------------------------------

@pytest.fixture
def log_stream():
    from launcher.logredact import install

    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    root = logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    f = install()
    try:
        yield buf
    finally:
        for h in [*root.handlers, logging.lastResort]:
            if h is not None:
                h.removeFilter(f)
        root.removeHandler(handler)
        root.setLevel(old)


def test_httpx_request_lines_never_show_the_password(log_stream):
    dev, d = tasmota()
    Power(d, clock=FakeClock(), off_wait=0).reboot()
    out = log_stream.getvalue()
    assert "HTTP Request: GET" in out  # httpx did log the requests ...
    assert leaks(out) == [] and "password=[set]" in out  # ... with the password masked


def test_log_filter_masks_secrets_in_messages_args_and_tracebacks(log_stream):
    from launcher.auth import register_secret

    register_secret("reg-secret-4242", users=["bob"])
    log = logging.getLogger("launcher.test")
    log.info("retry %s %s", "GET", httpx.URL("http://bob:p%40ss-9@h/x?api_key=k-9911&n=1"))
    log.info("basic %s", base64.b64encode(b"bob:reg-secret-4242").decode())
    try:
        raise RuntimeError("failed http://h/cm?password=" + quote("reg-secret-4242!"))
    except RuntimeError:
        log.exception("boom %s", quote_plus("reg-secret-4242"))
    out = log_stream.getvalue()
    for s in ("p%40ss-9", "k-9911", "reg-secret-4242", base64.b64encode(b"bob:reg-secret-4242").decode()):
        assert s not in out, s
    assert "RuntimeError" in out and "n=1" in out and "boom" in out


# -- item 4: ipmi and command hand the password over in the environment only -----------------------

def _spy(tmp_path, body: str):
    script = tmp_path / "spy"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_ipmi_real_process_gets_password_via_env_E_never_P(tmp_path):
    spy = _spy(tmp_path, f'printf "%s\\n" "$@" > {tmp_path}/argv\n'
                         f'cat /proc/$$/cmdline | tr "\\0" "\\n" > {tmp_path}/cmdline\n'
                         f'printf "%s" "$IPMI_PASSWORD" > {tmp_path}/env\n'
                         'echo "Chassis Power is on"\n')
    d = IpmiDriver("127.0.0.1:6230", username="admin", password=PW, ipmitool=str(spy))
    assert Power(d, clock=FakeClock()).status() == "on"
    argv = (tmp_path / "argv").read_text().splitlines()
    assert "-E" in argv and "-P" not in argv and "-U" in argv
    assert (tmp_path / "env").read_text() == PW
    seen = (tmp_path / "argv").read_text() + (tmp_path / "cmdline").read_text() + " ".join(d.sent)
    assert leaks(seen) == []
    assert d.sent[0].startswith("IPMI_PASSWORD=[set] ")


def test_command_driver_passes_password_in_env_not_argv(tmp_path):
    out = tmp_path / "seen"
    cmd = (f'printf "%s" "$POWER_PASSWORD" > {out}; tr "\\0" " " < /proc/$$/cmdline > {out}.cmdline; '
           f'printf "%s" "$POWER_USER" > {out}.user; echo on')
    d = CommandDriver({"state": cmd, "on": "true", "off": "true"}, password=PW, username="svc")
    assert Power(d, clock=FakeClock()).status() == "on"
    assert out.read_text() == PW and (tmp_path / "seen.user").read_text() == "svc"
    assert leaks((tmp_path / "seen.cmdline").read_text() + " ".join(d.sent)) == []
    assert "POWER_PASSWORD" not in os.environ  # the parent's environment is left alone


def test_command_driver_failure_message_is_masked():
    d = CommandDriver({"state": f'echo "bad password {quote(PW, safe="")}" >&2; exit 3', "on": "true", "off": "true"},
                      password=PW)
    with pytest.raises(PowerError) as e:
        d.state()
    assert "exited 3" in str(e.value) and leaks(str(e.value)) == []
