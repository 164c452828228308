"""A transport to nowhere, for tests of the adapter whose request method is stubbed."""

from __future__ import annotations

from dataclasses import dataclass, field

from envci.kube.transport import Transport


class NoAuth:
    def headers(self) -> dict[str, str]:
        return {}

    def refresh(self) -> bool:
        return False


@dataclass(frozen=True)
class Nowhere:
    server: str = "https://127.0.0.1:9"
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = True
    tls_server_name: str | None = None
    proxy_url: str | None = None
    namespace: str = "default"
    auth: NoAuth = field(default_factory=NoAuth)
    source: str = "a test"


def transport() -> Transport:
    return Transport(Nowhere())
