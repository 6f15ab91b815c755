"""Shared bits of the HTTP power drivers: one short-timeout client, errors with the masked URL."""
from __future__ import annotations

from launcher.power.base import PowerError


def base_url(address: str, default_scheme: str = "http") -> str:
    address = address.rstrip("/")
    return address if "://" in address else f"{default_scheme}://{address}"


def make_client(timeout: float = 5.0, **kw):
    from launcher.http import client

    # The verification routine retries; a device request itself fails fast.
    return client(connect=timeout, read=timeout, retries=0, **kw)


def check(driver, response, what: str):
    if response.status_code >= 400:
        raise PowerError(f"{driver.describe()}: {what} answered HTTP {response.status_code}: "
                         f"{driver.mask(response.text[:200])}")
    return response


def json_of(driver, response, what: str):
    check(driver, response, what)
    try:
        return response.json()
    except ValueError:
        raise PowerError(f"{driver.describe()}: {what} did not answer JSON: {driver.mask(response.text[:200])}") from None
