"""Secrets referenced from envci.yaml (`secrets: {NAME: {secret: ..., key: ...}}`), read from the cluster.

Only the one key is decoded; the value is registered for redaction before anything can print it.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from envci.errors import ConfigError
from envci.kube.client import Kube, kubeconfig_namespace
from envci.redact import register


def read_secret_key(kube: Kube, name: str, ref: Any) -> str:
    ns = ref.secret_namespace or kubeconfig_namespace()
    field = f"secrets.{name}"
    data = kube.secret_data(ns, ref.secret)
    if data is None:
        raise ConfigError(
            f"Kubernetes Secret {ns}/{ref.secret} does not exist",
            field=f"{field}.secret",
            hint="create it, or set secret_namespace to where it lives",
        )
    if ref.key not in data:
        keys = ", ".join(sorted(data)) or "none"
        raise ConfigError(
            f"Kubernetes Secret {ns}/{ref.secret} has no key {ref.key!r} (its keys: {keys})", field=f"{field}.key"
        )
    try:
        value = base64.b64decode(data[ref.key]).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise ConfigError(f"key {ref.key!r} of Secret {ns}/{ref.secret} is not UTF-8 text", field=f"{field}.key") from None
    register(value)
    return value
