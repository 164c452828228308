"""The benchmark harness behind `nox -s bench`: envci beside a hand-written kubectl/helm baseline."""
