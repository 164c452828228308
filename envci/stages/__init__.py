"""The stages: orchestration only. Each takes loaded config and a connected client and returns a result dict."""
