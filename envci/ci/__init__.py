"""One adapter per CI system: detect the build's context and publish outputs where it reads them."""

from envci.ci.detect import detect_context

__all__ = ["detect_context"]
