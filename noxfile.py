"""Developer workflows. `nox -s cluster -- up|down|status|kubeconfig` manages the local cluster."""

from __future__ import annotations

import sys

import nox


@nox.session(python=False)
def cluster(session: nox.Session) -> None:
    """The embedded local cluster: up (default), down, status, kubeconfig; `-- status --output json`."""
    args = session.posargs or ["up"]
    # python=False and sys.executable: the interpreter running nox, with envci installed, and no
    # virtualenv to build, so the session starts at once.
    session.run(sys.executable, "-m", "envci.localcluster.command", *args, external=True)
