"""Kubernetes access (client, watches, logs) and the pure rules that judge what it returns."""
