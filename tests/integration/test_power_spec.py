"""PowerSpec fields the drivers need, wired through from_spec: IPMI `cipher` (ipmi_sim and some BMCs
lack suite 17, ipmitool's default) and Redfish `verify` (BMCs ship self-signed certificates).

The HTTPS Redfish BMC is the simulator with a throw-away self-signed certificate (made with
`cryptography`), standing for a real BMC's factory certificate."""
from __future__ import annotations

import datetime as dt

import pytest

from launcher.power import Power, PowerError, from_spec
from launcher.sim.redfish import RedfishSim
from launcher.spec.inventory import PowerSpec


def test_ipmi_cipher_from_the_inventory_reaches_ipmitool():
    drv = from_spec(PowerSpec(driver="ipmi", address="10.0.0.9:623", username="admin", cipher=3))
    argv = drv.argv("status")
    assert argv[argv.index("-C") + 1] == "3" and argv[argv.index("-H") + 1] == "10.0.0.9"
    assert "-C" not in from_spec(PowerSpec(driver="ipmi", address="10.0.0.9")).argv("status")  # ipmitool's default
    with pytest.raises(ValueError):
        PowerSpec(driver="ipmi", address="x", cipher=99)


def _self_signed(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bmc.local")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    certfile, keyfile = tmp_path / "bmc.crt", tmp_path / "bmc.key"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return str(certfile), str(keyfile)


def test_redfish_verify_false_or_ca_bundle_reaches_a_self_signed_bmc(tmp_path):
    cert, key = _self_signed(tmp_path)
    bmc = RedfishSim(tls=(cert, key), on=False).start()
    try:
        assert bmc.url.startswith("https://")
        strict = Power(from_spec(PowerSpec(driver="redfish", address=bmc.url)), poll=0.05, confirm_timeout=2)
        with pytest.raises(PowerError, match="not trusted"):  # verification on (the default): the self-signed BMC is refused
            strict.driver.state()
        for verify in (False, cert):  # off, or the BMC's own certificate as the CA bundle
            drv = from_spec(PowerSpec(driver="redfish", address=bmc.url, verify=verify))
            assert drv.state() == "off"
        res = Power(drv, poll=0.05, confirm_timeout=5).on()
        assert res.ok and bmc.on
    finally:
        bmc.stop()
