"""envci.yaml: the typed model, loading with file:line errors, and Jinja2 rendering."""

from envci.config.loader import load_config, LoadedConfig
from envci.config.model import Spec

__all__ = ["load_config", "LoadedConfig", "Spec"]
