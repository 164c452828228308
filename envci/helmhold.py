"""A Helm install started before its component's dependencies are ready, and held before it
records or applies anything until they are.

`helm upgrade --install` spends much of its time before it touches the release: starting, reading
the chart (downloading a remote one), rendering. A held install does that while the dependencies
start, then waits in its post-renderer, which Helm runs after rendering and before it records the
release or creates an object, until envci answers: go (the post-renderer hands the manifests on
unchanged) or called off (it fails, and Helm stops with nothing recorded or applied).

The post-renderer is a few lines of sh (a Python one cost 60 ms of CPU per install) that reads
envci's answer from a FIFO in a private directory. envci keeps the FIFO open from the start, so the
post-renderer never waits to open it while envci lives, and when envci is gone, so is the last
writer: a read under way ends empty and the install is called off. A post-renderer that starts
after envci died finds envci's process gone (a FIFO without a writer would block its open) or, after
a clean exit, no FIFO at all. The manifests never touch the disk.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from pathlib import Path

ANSWER_ENV = "ENVCI_HELM_HOLD"
HOLDER_ENV = "ENVCI_HELM_HOLDER"

_POST_RENDERER = """#!/bin/sh
# envci's held install: the manifests go on unchanged once envci answers 1.
manifests=$(cat; echo x)
answer=""
if kill -0 "$%s" 2>/dev/null; then
    IFS= read -r answer < "$%s" || answer=""
fi
if [ "$answer" != 1 ]; then
    echo "envci called this install off before it applied anything" >&2
    exit 1
fi
printf '%%s' "${manifests%%x}"
""" % (HOLDER_ENV, ANSWER_ENV)


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
    """Use as a context manager around the held helm process; `release` or `call_off` answers it (the
    first answer counts), and the end of the block calls off whatever was not released."""

    def __init__(self) -> None:
        self._dir: Path | None = None
        self._fd: int | None = None
        self.answer: bool | None = None
        self._answered = asyncio.Event()

    def __enter__(self) -> Hold:
        self._dir = Path(tempfile.mkdtemp(prefix="envci-hold-"))  # mode 0700: nobody else answers
        script = self._dir / "post-render"
        script.write_text(_POST_RENDERER, encoding="utf-8")
        script.chmod(0o700)
        os.mkfifo(self._dir / "answer", 0o600)
        # Read and write: opening never blocks, and this process stays a writer until it closes it.
        self._fd = os.open(self._dir / "answer", os.O_RDWR | os.O_NONBLOCK)
        return self

    def __exit__(self, *exc: object) -> None:
        self.call_off()
        if self._dir is not None:  # gone first: a post-renderer opening it now fails, never waits
            shutil.rmtree(self._dir, ignore_errors=True)
        if self._fd is not None:
            os.close(self._fd)  # a post-renderer still reading gets an empty answer: called off
            self._fd = None

    def args(self) -> list[str]:
        assert self._dir is not None, "enter the Hold first"
        return ["--post-renderer", str(self._dir / "post-render")]

    def env(self) -> dict[str, str]:
        assert self._dir is not None, "enter the Hold first"
        return {ANSWER_ENV: str(self._dir / "answer"), HOLDER_ENV: str(os.getpid())}

    def release(self) -> None:
        self._decide(True)

    def call_off(self) -> None:
        self._decide(False)

    async def answered(self) -> bool:
        """Wait for the answer: True for go."""
        await self._answered.wait()
        return bool(self.answer)

    def _decide(self, go: bool) -> None:
        if self.answer is not None or self._fd is None:
            return
        self.answer = go
        self._answered.set()
        # One line per read; a few, should helm run its post-renderer more than once.
        os.write(self._fd, (b"1\n" if go else b"0\n") * 4)
