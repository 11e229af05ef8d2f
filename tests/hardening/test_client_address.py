"""The wrong-key budget is per client address, against the real server process (`python -m app
serve`): by default the connecting one, so a client cannot reset it by sending a made-up
X-Forwarded-For (or Forwarded) with each request (uvicorn's own default trusted it from
loopback peers); behind a proxy named by FACEAPI_FORWARDED_ALLOW_IPS, the one it forwards."""

from __future__ import annotations

import httpx

from tests.conftest import migrated_sqlite_url
from tests.hardening.serving import serve


def _wrong_key_statuses(tmp_path, forwarded: list[dict], **settings: str) -> list[int]:
    """The answers of the real server (`python -m app serve`, a budget of 5 wrong keys a
    minute) to one wrong-key request per entry of `forwarded` (the proxy headers it carries)."""
    with serve(tmp_path, migrated_sqlite_url(tmp_path), wait_for="/health/live",  # keys need no model
               auth_failures_per_minute="5", log_level="WARNING", **settings) as served:
        return [httpx.get(served.base_url + "/persons", headers={"X-API-Key": "fa_wrong", **h}).status_code
                for h in forwarded]


def test_made_up_forwarded_addresses_do_not_reset_the_wrong_key_budget(tmp_path):
    statuses = _wrong_key_statuses(tmp_path, [
        {"X-Forwarded-For": f"203.0.113.{i}", "Forwarded": f"for=198.51.100.{i}"} for i in range(20)])
    assert statuses[:5] == [401] * 5 and set(statuses[6:]) == {429}, statuses


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget(tmp_path):
    """With FACEAPI_FORWARDED_ALLOW_IPS naming the proxy (here the test, on loopback), the
    client is the address the proxy appended last: one client's wrong keys use up its budget
    only, and a made-up address it puts before its own changes nothing."""
    first = [{"X-Forwarded-For": f"198.51.100.{i}, 203.0.113.7"} for i in range(8)]
    other = [{"X-Forwarded-For": "203.0.113.8"}] * 3
    statuses = _wrong_key_statuses(tmp_path, first + other, forwarded_allow_ips="127.0.0.1")
    assert statuses[:5] == [401] * 5 and set(statuses[5:8]) == {429}, statuses
    assert statuses[8:] == [401] * 3, statuses


def test_wrong_keys_from_an_address_never_lock_out_its_valid_keys(tmp_path):
    """Behind a proxy or NAT every client shares one address: 35 wrong keys from it (a
    scanner's, or one misconfigured client's) must not turn away the valid keys of others."""
    from tests.conftest import add_keys

    url = migrated_sqlite_url(tmp_path)
    admin_key, client_key = add_keys(url)
    with serve(tmp_path, url, wait_for="/health/live", auth_failures_per_minute="5") as served, \
            httpx.Client(base_url=served.base_url, timeout=30) as http:
        scanned = [http.get("/persons", headers={"X-API-Key": f"fa_wrong{i:040d}"}).status_code
                   for i in range(35)]
        again = [http.get("/persons", headers={"X-API-Key": "fa_wrong" + "0" * 40}).status_code
                 for _ in range(5)]
        valid = [http.get("/persons", headers={"X-API-Key": k}).status_code
                 for k in (admin_key, client_key, admin_key, client_key)]
    assert scanned[:5] == [401] * 5 and set(scanned[5:]) == {429}, scanned  # the budget still holds
    assert set(again) == {429}, again
    assert valid == [200] * 4, valid
