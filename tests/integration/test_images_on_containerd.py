"""The built archives on a real containerd: imported by `ensure_loaded`, then run with runc.

A containerd of its own is started for the test (root, state and socket in a temporary directory under
/tmp, CRI and NRI off), so the local cluster's node is never touched. Needs root, runc, gcc,
busybox-static and the local cluster's containerd/ctr binaries; skipped when any is missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from envci.images import build as builder
from envci.images.containerd import ensure_loaded, list_images

PAUSE, BUSYBOX = "envci.local/pause:3.10", "envci.local/busybox:1"
CONFIG = """version = 3
root = "{dir}/root"
state = "{dir}/state"
imports = []
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime", "io.containerd.cri.v1.images",
                    "io.containerd.nri.v1.nri", "io.containerd.internal.v1.opt"]
[grpc]
  address = "{dir}/c.sock"
[ttrpc]
  address = "{dir}/c.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
"""


def _bin_dir() -> Path | None:
    try:
        return builder.Sources().bins()
    except (OSError, subprocess.SubprocessError):
        return None


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root to run containerd"
    if not shutil.which("runc"):
        return "needs runc"
    bins = _bin_dir()
    if bins is None or not all(os.access(bins / b, os.X_OK) for b in ("containerd", "ctr", "containerd-shim-runc-v2")):
        return "needs containerd, ctr and containerd-shim-runc-v2 (bash envci/localcluster/build.sh)"
    busybox = builder.Sources().busybox_binary()
    if not shutil.which("gcc") or not busybox.is_file() or not builder._is_static(busybox):
        return "needs gcc and busybox-static (scripts/ci-deps/images.sh)"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")


@pytest.fixture()
def containerd() -> Iterator[dict[str, Path]]:
    bins = _bin_dir()
    assert bins is not None
    work = Path(tempfile.mkdtemp(prefix="envci-ctd-", dir="/tmp"))  # short: a socket path has ~100 bytes
    (work / "config.toml").write_text(CONFIG.format(dir=work))
    env = {**os.environ, "PATH": f"{bins}:{os.environ.get('PATH', '')}"}
    log = (work / "containerd.log").open("w")
    proc = subprocess.Popen([str(bins / "containerd"), "--config", str(work / "config.toml")], stdout=log, stderr=subprocess.STDOUT, env=env)
    socket = work / "c.sock"
    try:
        deadline = time.monotonic() + 30
        while not socket.exists():
            assert proc.poll() is None and time.monotonic() < deadline, (work / "containerd.log").read_text()[-2000:]
            time.sleep(0.1)
        yield {"socket": socket, "ctr": bins / "ctr", "work": work}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines() if str(work) in line]
        for mount in sorted(mounts, reverse=True):
            subprocess.run(["umount", "-l", mount], check=False)
        shutil.rmtree(work, ignore_errors=True)


def _ctr(node: dict[str, Path], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{node['ctr'].parent}:{os.environ.get('PATH', '')}"}
    return subprocess.run([str(node["ctr"]), "--address", str(node["socket"]), "-n", "k8s.io", *args], capture_output=True, text=True, timeout=timeout, env=env)


def test_built_archives_import_and_run(containerd: dict[str, Path], tmp_path: Path) -> None:
    archives = builder.build(builder.Sources(cache=tmp_path / "cache"), [PAUSE, BUSYBOX], log=lambda _m: None)

    assert ensure_loaded(archives, containerd["socket"], containerd["ctr"]) == archives
    assert {PAUSE, BUSYBOX} <= list_images(containerd["socket"], containerd["ctr"])
    assert ensure_loaded(archives, containerd["socket"], containerd["ctr"]) == []  # nothing missing now

    hi = _ctr(containerd, "run", "--rm", BUSYBOX, "envci-hi", "sh", "-c", "echo hi; stat -c %a /tmp; readlink /bin/sh")
    assert hi.returncode == 0, hi.stderr
    assert hi.stdout.split() == ["hi", "1777", "/bin/busybox"]

    started = _ctr(containerd, "run", "-d", PAUSE, "envci-pause")
    assert started.returncode == 0, started.stderr
    try:
        time.sleep(0.5)
        assert "RUNNING" in _ctr(containerd, "task", "ls").stdout
        _ctr(containerd, "task", "kill", "-s", "SIGTERM", "envci-pause")
        deadline = time.monotonic() + 10
        while "RUNNING" in _ctr(containerd, "task", "ls").stdout:
            assert time.monotonic() < deadline, "pause ignored SIGTERM"
            time.sleep(0.1)
    finally:
        _ctr(containerd, "task", "rm", "-f", "envci-pause")
        _ctr(containerd, "container", "rm", "envci-pause")
