"""The held install's post-renderer, run as Helm runs it (manifests on stdin, the socket's path in
its environment): it hands the manifests on only once released, fails once called off or once envci
is gone, and writes nothing to disk."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from envci.helmhold import Hold, holds

MANIFESTS = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: held}\ndata: {password: not-on-disk}\n"


@pytest.mark.parametrize(
    ("version", "expected"),
    [("v3.22.0", True), ("v3.1.0\n", True), ("v3.0.3", False), ("v4.0.1", False), ("v2.17.0", False), ("", False), ("dev", False)],
)
def test_only_helm_3_from_3_1_takes_an_executable_post_renderer(version: str, expected: bool) -> None:
    assert holds(version) is expected


async def _render(hold: Hold) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        hold.args()[1], stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **hold.env()},
    )
    assert proc.stdin is not None
    proc.stdin.write(MANIFESTS)
    proc.stdin.close()
    return proc


async def _until_reached(hold: Hold) -> None:
    for _ in range(500):
        if hold.reached:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the post-renderer never asked")


def test_released_it_hands_the_manifests_on_unchanged() -> None:
    async def run() -> tuple[bytes, int | None, bool]:
        async with Hold() as hold:
            assert hold.args()[0] == "--post-renderer"
            proc = await _render(hold)
            await _until_reached(hold)
            await asyncio.sleep(0.2)
            still_held = proc.returncode is None
            hold.release()
            out, _ = await proc.communicate()
            return out, proc.returncode, still_held

    out, code, still_held = asyncio.run(run())
    assert still_held  # waits for the answer after reading its input
    assert (out, code) == (MANIFESTS, 0)


def test_called_off_it_fails_and_hands_nothing_on() -> None:
    async def run() -> tuple[bytes, bytes, int | None]:
        async with Hold() as hold:
            proc = await _render(hold)
            await _until_reached(hold)
            hold.call_off()
            hold.release()  # the first answer counts
            out, err = await proc.communicate()
            return out, err, proc.returncode

    out, err, code = asyncio.run(run())
    assert code == 1 and out == b""
    assert b"called this install off" in err


def test_with_envci_gone_it_fails_and_its_directory_is_removed(tmp_path: Path) -> None:
    async def gone(script: str, socket_path: Path) -> tuple[bytes, int | None]:
        proc = await asyncio.create_subprocess_exec(
            script, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            env={**os.environ, "ENVCI_HELM_HOLD": str(socket_path)},
        )
        out, _ = await proc.communicate(MANIFESTS)
        return out, proc.returncode

    async def run() -> tuple[list[tuple[bytes, int | None]], Path]:
        def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.close()  # as a process that dies while helm waits

        dead = await asyncio.start_unix_server(hang_up, path=str(tmp_path / "dead"))
        async with Hold() as hold:
            script = hold.args()[1]
            where = Path(script).parent
            assert oct(where.stat().st_mode & 0o777) == "0o700"
            results = [await gone(script, tmp_path / "dead"), await gone(script, tmp_path / "never-listened")]
        dead.close()
        return results, where

    results, where = asyncio.run(run())
    assert results == [(b"", 1), (b"", 1)]
    assert not where.exists()


def test_nothing_it_holds_reaches_the_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)

    async def run() -> None:
        async with Hold() as hold:
            proc = await _render(hold)
            await _until_reached(hold)
            for f in tmp_path.rglob("*"):
                if f.is_file():
                    assert b"not-on-disk" not in f.read_bytes()
            hold.release()
            await proc.communicate()

    asyncio.run(run())
