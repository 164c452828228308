"""The published JSON Schema of envci.yaml, generated from the model."""

from __future__ import annotations

from typing import Any

from envci.config.model import Spec


def schema() -> dict[str, Any]:
    s = Spec.model_json_schema()
    s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    s["title"] = "envci.yaml"
    return s
