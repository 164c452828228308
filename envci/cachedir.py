"""Where envci keeps what it can compute again: `$ENVCI_CACHE_DIR`, else `$XDG_CACHE_HOME/envci`,
else `~/.cache/envci`."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    root = os.environ.get("ENVCI_CACHE_DIR") or os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "envci")
    return Path(root)
