"""Secrets referenced from envci.yaml (`secrets: {NAME: {secret: ..., key: ...}}`), read from the cluster.

Only the one key is decoded; the value is registered for redaction before anything can print it.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Any

from kubernetes import config as kconfig
from kubernetes.client.exceptions import ApiException

from envci.errors import ConfigError
from envci.kube.client import Kube, api_error
from envci.redact import register


def current_namespace(kubeconfig: str | None = None) -> str:
    """The namespace of the kubeconfig's current context, as kubectl would use it."""
    try:
        _, active = kconfig.list_kube_config_contexts(config_file=kubeconfig or os.environ.get("KUBECONFIG"))
        return str((active.get("context") or {}).get("namespace") or "default")
    except (kconfig.ConfigException, OSError, TypeError):
        return "default"


def read_secret_key(kube: Kube, name: str, ref: Any) -> str:
    ns = ref.secret_namespace or current_namespace()
    field = f"secrets.{name}"
    try:
        obj = kube.call(lambda: kube.core.read_namespaced_secret(ref.secret, ns), f"read Secret {ref.secret}")
    except ApiException as e:
        if e.status == 404:
            raise ConfigError(
                f"Kubernetes Secret {ns}/{ref.secret} does not exist",
                field=f"{field}.secret",
                hint="create it, or set secret_namespace to where it lives",
            ) from None
        raise api_error(e, f"read Secret {ns}/{ref.secret}") from None
    data = obj.data or {}
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
