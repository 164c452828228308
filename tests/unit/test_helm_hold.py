"""The held install's post-renderer, run as Helm runs it (manifests on stdin, the answer FIFO's path in
its environment): it hands the manifests on unchanged only once released, fails once called off or
once envci is gone, and writes nothing to disk."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from envci.helmhold import Hold, holds

MANIFESTS = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: held}\ndata: {password: not-on-disk}\n\n"


@pytest.mark.parametrize(
    ("version", "expected"),
    [("v3.22.0", True), ("v3.1.0\n", True), ("v3.0.3", False), ("v4.0.1", False), ("v2.17.0", False), ("", False), ("dev", False)],
)
def test_only_helm_3_from_3_1_takes_an_executable_post_renderer(version: str, expected: bool) -> None:
    assert holds(version) is expected


def render(script: str, answer: str, holder: int | None = None) -> subprocess.Popen[bytes]:
    """The post-renderer as Helm starts it, its input written and closed."""
    read, write = os.pipe()
    os.write(write, MANIFESTS)
    os.close(write)
    proc = subprocess.Popen([script], stdin=read, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "ENVCI_HELM_HOLD": answer, "ENVCI_HELM_HOLDER": str(holder or os.getpid())})
    os.close(read)
    return proc


def test_released_it_hands_the_manifests_on_unchanged() -> None:
    with Hold() as hold:
        assert hold.args()[0] == "--post-renderer"
        proc = render(hold.args()[1], hold.env()["ENVCI_HELM_HOLD"])
        time.sleep(0.3)
        assert proc.poll() is None  # read its input, waits for the answer
        hold.release()
        out, _ = proc.communicate(timeout=10)
    assert (out, proc.returncode) == (MANIFESTS, 0)  # byte for byte, trailing blank line included


def test_an_answer_given_before_it_asks_is_kept_for_it() -> None:
    with Hold() as hold:
        hold.release()
        out, _ = render(hold.args()[1], hold.env()["ENVCI_HELM_HOLD"]).communicate(timeout=10)
    assert out == MANIFESTS


def test_called_off_it_fails_and_hands_nothing_on() -> None:
    with Hold() as hold:
        proc = render(hold.args()[1], hold.env()["ENVCI_HELM_HOLD"])
        hold.call_off()
        hold.release()  # the first answer counts
        out, err = proc.communicate(timeout=10)
    assert (out, proc.returncode) == (b"", 1)
    assert b"called this install off" in err


def test_with_envci_killed_it_fails_instead_of_waiting_forever() -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import time\nfrom envci.helmhold import Hold\nh = Hold().__enter__()\n"
         "print(h.args()[1], h.env()['ENVCI_HELM_HOLD'], flush=True)\ntime.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout is not None
    script, answer = holder.stdout.readline().split()
    try:
        proc = render(script, answer, holder.pid)
        time.sleep(0.3)
        assert proc.poll() is None
        holder.send_signal(signal.SIGKILL)  # no cleanup, no answer: only its open FIFO goes
        out, _ = proc.communicate(timeout=10)
        assert (out, proc.returncode) == (b"", 1)
        holder.wait()
        late = render(script, answer, holder.pid)  # helm got to its post-renderer after envci died
        out, _ = late.communicate(timeout=10)
        assert (out, late.returncode) == (b"", 1)
    finally:
        holder.kill()
        holder.wait()
        subprocess.run(["rm", "-rf", str(Path(script).parent)], check=False)


def test_its_directory_is_private_holds_nothing_it_renders_and_goes_at_the_end() -> None:
    with Hold() as hold:
        where = Path(hold.args()[1]).parent
        assert oct(where.stat().st_mode & 0o777) == "0o700"
        proc = render(hold.args()[1], hold.env()["ENVCI_HELM_HOLD"])
        time.sleep(0.3)
        for f in where.iterdir():
            if f.is_file():
                assert b"not-on-disk" not in f.read_bytes()
        hold.release()
        proc.communicate(timeout=10)
    assert not where.exists()


def test_whether_helm_can_hold_is_asked_once_per_binary_and_again_when_it_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from envci.helm import Helm

    monkeypatch.setenv("ENVCI_CACHE_DIR", str(tmp_path / "cache"))
    asked = tmp_path / "asked"
    fake = tmp_path / "helm"

    def make(version: str) -> None:
        fake.write_text(f"#!/bin/sh\necho x >> {asked}\nprintf {version}\n")
        fake.chmod(0o755)

    def can_hold() -> bool:
        monkeypatch.setenv("ENVCI_HELM", str(fake))
        return asyncio.run(Helm().can_hold())

    make("v3.22.0")
    assert [can_hold(), can_hold(), can_hold()] == [True, True, True]
    assert asked.read_text().count("x") == 1  # later provisions read the answer
    make("v4.0.0")  # another helm at the same path
    assert can_hold() is False
    assert asked.read_text().count("x") == 2
