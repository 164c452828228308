from __future__ import annotations

from envci.config.model import Component
from envci.testing.forwards import local_url


def test_local_url_keeps_scheme_and_path_and_drops_the_cluster_port() -> None:
    c = Component.model_validate({"name": "api", "manifests": ["a.yaml"], "expose": {"port": 8080, "path": "v1"}})
    assert local_url(c, 41234) == "http://127.0.0.1:41234/v1"
    tls = Component.model_validate({"name": "web", "manifests": ["a.yaml"], "expose": {"port": 443, "scheme": "https", "host": "x.example"}})
    assert local_url(tls, 5000) == "https://127.0.0.1:5000/"
