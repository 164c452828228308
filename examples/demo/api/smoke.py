"""In-cluster smoke checks, run by `envci test` as a Job in the environment with the API's image.

It reaches the services by their in-namespace names (http://api:8080, http://web:8080), as the
other workloads do, so it also proves what a runner-side test cannot: cluster DNS, the Services'
endpoints and the namespace's NetworkPolicy let pods talk to each other. Standard library only.
Writes JUnit XML to $JUNIT (default /tmp/smoke.xml) and exits 1 when a check failed.

Environment: API_URL, WEB_URL, EXPECTED_ITEMS (comma-separated names the seed loads).
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from xml.etree import ElementTree as ET

API = os.environ.get("API_URL", "http://api:8080").rstrip("/")
WEB = os.environ.get("WEB_URL", "http://web:8080").rstrip("/")
TIMEOUT_SECONDS = 10


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def fetch_json(url: str) -> Any:
    status, body = fetch(url)
    assert status == 200, f"GET {url}: HTTP {status}: {body[:300]!r}"
    return json.loads(body)


def check_api_alive() -> None:
    assert fetch_json(f"{API}/healthz") == {"status": "ok"}


def check_api_ready_and_migrated() -> None:
    state = fetch_json(f"{API}/readyz")
    assert state == {"database": "ok", "schema": True, "migrated": True}, f"GET /readyz: {state}"


def check_items_hold_the_fixtures() -> None:
    expected = [n.strip() for n in os.environ.get("EXPECTED_ITEMS", "").split(",") if n.strip()]
    assert expected, "EXPECTED_ITEMS is empty: the suite's env must name the seeded items"
    names = [item["name"] for item in fetch_json(f"{API}/items")]
    missing = [n for n in expected if n not in names]
    assert not missing, f"GET /items lacks seeded item(s) {missing}; it returned {names}"


def check_web_serves_its_page() -> None:
    status, body = fetch(f"{WEB}/")
    assert status == 200 and b"<title>demo shop</title>" in body, f"GET {WEB}/: HTTP {status}: {body[:200]!r}"


def check_web_reaches_the_api() -> None:
    through_web = fetch_json(f"{WEB}/cgi-bin/items")
    direct = fetch_json(f"{API}/items")
    assert through_web == direct, f"web's /cgi-bin/items differs from the api's /items: {through_web} != {direct}"


CHECKS: list[Callable[[], None]] = [
    check_api_alive,
    check_api_ready_and_migrated,
    check_items_hold_the_fixtures,
    check_web_serves_its_page,
    check_web_reaches_the_api,
]


def run(checks: list[Callable[[], None]]) -> ET.Element:
    suite = ET.Element("testsuite", name="smoke")
    failures = 0
    for check in checks:
        started = time.monotonic()
        case = ET.SubElement(suite, "testcase", classname="smoke", name=check.__name__.removeprefix("check_"))
        try:
            check()
            print(f"PASS {check.__name__}")
        except Exception as e:  # noqa: BLE001 - every failure of a check is that check's result
            failures += 1
            message = f"{type(e).__name__}: {e}"
            failure = ET.SubElement(case, "failure", message=message[:500])
            failure.text = traceback.format_exc()
            print(f"FAIL {check.__name__}: {message}")
        case.set("time", f"{time.monotonic() - started:.3f}")
    suite.set("tests", str(len(checks)))
    suite.set("failures", str(failures))
    suite.set("errors", "0")
    return suite


def await_network(url: str, patience: float = 15.0) -> None:
    """Wait while connections are refused: a new pod's address reaches the node's NetworkPolicy rules a
    moment after the pod starts (as with any policy enforcer), and until then the namespace's
    default-deny refuses it. Only refusals are retried, and only this long; the checks then run and
    fail on whatever is still wrong."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        try:
            fetch(url)
            return
        except urllib.error.URLError as e:
            if not isinstance(e.reason, ConnectionRefusedError):
                return
        except ConnectionRefusedError:
            pass
        time.sleep(0.25)


def main() -> int:
    await_network(f"{API}/healthz")
    suite = run(CHECKS)
    path = os.environ.get("JUNIT", "/tmp/smoke.xml")
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
    failed = int(suite.get("failures", "0"))
    print(f"smoke: {len(CHECKS) - failed}/{len(CHECKS)} checks passed; JUnit in {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
