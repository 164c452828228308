"""envci: an isolated, production-like Kubernetes environment for every CI build."""

__version__ = "0.1.0"
