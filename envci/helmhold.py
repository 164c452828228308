"""A Helm install started before its component's dependencies are ready, and held before it
records or applies anything until they are.

`helm upgrade --install` spends much of its time before it touches the release: starting, reading
the chart (downloading a remote one), rendering. A held install does that while the dependencies
start, then waits in its post-renderer, which Helm runs after rendering and before it records the
release or creates an object, until envci answers: go (the post-renderer hands the manifests on
unchanged) or called off (it fails, and Helm stops with nothing recorded or applied). The
post-renderer reaches envci over a Unix socket in a private directory; when envci is gone, the
socket is too, and the install is called off. The manifests never touch the disk.
"""

from __future__ import annotations

import asyncio
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

SOCKET_ENV = "ENVCI_HELM_HOLD"

# Run with -I -S: the standard library only, so the held helm does not wait for envci's imports.
_POST_RENDERER = """\
import os, socket, sys

manifests = sys.stdin.buffer.read()
answer = b""
try:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(os.environ["ENVCI_HELM_HOLD"])
        answer = s.recv(1)
except (OSError, KeyError):
    pass
if answer != b"1":
    sys.stderr.write("envci called this install off before it applied anything\\n")
    sys.exit(1)
sys.stdout.buffer.write(manifests)
"""


def holds(version: str) -> bool:
    """Pure: whether a helm of this version (`v3.22.0`) takes an executable as its post-renderer:
    Helm 3 from 3.1 does; Helm 4 takes a plugin's name instead."""
    parts = version.strip().lstrip("v").split(".")
    try:
        major, minor = int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return False
    return major == 3 and minor >= 1


class Hold:
    """Use as an async context manager around the held helm process; `release` or `call_off` answers
    it (the first answer counts), and the end of the block calls off whatever was not released."""

    def __init__(self) -> None:
        self.reached = False  # the post-renderer asked: Helm has rendered and waits
        self._dir: Path | None = None
        self._server: asyncio.AbstractServer | None = None
        self._answer: asyncio.Future[bool] | None = None

    async def __aenter__(self) -> Hold:
        self._dir = Path(tempfile.mkdtemp(prefix="envci-hold-"))  # mode 0700: nobody else answers
        code = self._dir / "hold.py"
        code.write_text(_POST_RENDERER, encoding="utf-8")
        script = self._dir / "post-render"
        script.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -I -S {shlex.quote(str(code))}\n", encoding="utf-8")
        script.chmod(0o700)
        self._answer = asyncio.get_running_loop().create_future()
        self._server = await asyncio.start_unix_server(self._serve, path=str(self._dir / "socket"))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.call_off()
        if self._server is not None:
            self._server.close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)

    @property
    def released(self) -> bool:
        return self._answer is not None and self._answer.done() and self._answer.result()

    def args(self) -> list[str]:
        assert self._dir is not None, "enter the Hold first"
        return ["--post-renderer", str(self._dir / "post-render")]

    def env(self) -> dict[str, str]:
        assert self._dir is not None, "enter the Hold first"
        return {SOCKET_ENV: str(self._dir / "socket")}

    def release(self) -> None:
        self._decide(True)

    def call_off(self) -> None:
        self._decide(False)

    async def answered(self) -> bool:
        """Wait for the answer: True for go."""
        assert self._answer is not None, "enter the Hold first"
        return await asyncio.shield(self._answer)

    def _decide(self, go: bool) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_result(go)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reached = True
        try:
            go = await self.answered()
            writer.write(b"1" if go else b"0")
            await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass  # helm went away meanwhile: nothing to tell it
        finally:
            writer.close()
