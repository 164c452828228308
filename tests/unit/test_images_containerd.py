"""Loading archives into containerd: validation first, only what is missing, clear errors when the node is down.

`ctr` is replaced by a small script that records its arguments and answers `images ls -q` from a file,
so these tests run the real subprocess path without a containerd.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from envci.errors import ConfigError, ExitCode, InfrastructureError, NotReadyError
from envci.images.archive import Image, write_archive
from envci.images.containerd import archives_to_import, ensure_loaded, load_archives, normalize_reference
from envci.images.layer import LayerContents, write_layer
from envci.images.reader import ArchiveImage, read_archive
from envci.localcluster import command

FAKE_CTR = """#!/bin/sh
echo "$@" >> "{calls}"
case "$*" in
  *" images ls -q") [ -n "$CTR_REFUSED" ] && {{ echo "dial unix /x.sock: connect: connection refused" >&2; exit 1; }}; cat "{present}" ;;
  *" images import "*) [ -n "$CTR_FAIL" ] && {{ echo "ctr: content digest mismatch" >&2; exit 1; }}; true ;;
esac
"""


@pytest.fixture()
def node(tmp_path: Path) -> dict[str, Path]:
    calls, present = tmp_path / "calls", tmp_path / "present"
    calls.write_text("")
    present.write_text("")
    ctr = tmp_path / "ctr"
    ctr.write_text(FAKE_CTR.format(calls=calls, present=present))
    ctr.chmod(ctr.stat().st_mode | stat.S_IXUSR)
    socket = tmp_path / "containerd.sock"
    socket.write_text("")  # only its existence is checked before calling ctr
    return {"ctr": ctr, "socket": socket, "calls": calls, "present": present}


def _archive(tmp_path: Path, *names: str) -> Path:
    c = LayerContents()
    c.add_file("x", "-".join(names).encode())
    layer = write_layer(c, tmp_path / f"{names[0].replace('/', '_')}.layer")
    return write_archive([Image(n, (layer,)) for n in names], tmp_path / f"{names[0].replace('/', '_')}.tar").path


def _imports(node: dict[str, Path]) -> list[str]:
    return [line.split()[-1] for line in node["calls"].read_text().splitlines() if " images import " in line]


@pytest.mark.parametrize(
    ("name", "stored"),
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox:1", "docker.io/library/busybox:1"),
        ("me/app:2", "docker.io/me/app:2"),
        ("envci.local/pause:3.10", "envci.local/pause:3.10"),
        ("localhost:5000/a", "localhost:5000/a:latest"),
        ("localhost/a:1", "localhost/a:1"),
        ("ghcr.io/o/r@sha256:abc", "ghcr.io/o/r@sha256:abc"),
    ],
)
def test_names_are_compared_as_containerd_stores_them(name: str, stored: str) -> None:
    assert normalize_reference(name) == stored


def test_only_archives_bringing_a_missing_image_are_imported() -> None:
    def img(*names: str) -> ArchiveImage:
        return ArchiveImage(names, "sha256:0", 1, "docker")

    contents = {
        Path("pause.tar"): [img("envci.local/pause:3.10")],
        Path("two.tar"): [img("envci.local/a:1"), img("envci.local/b:1")],
        Path("hub.tar"): [img("busybox:1")],
        Path("unnamed.tar"): [img()],
    }
    present = ["envci.local/pause:3.10", "envci.local/a:1", "docker.io/library/busybox:1"]
    assert archives_to_import(contents, present) == [Path("two.tar"), Path("unnamed.tar")]


def test_an_image_held_with_another_config_is_imported_again() -> None:
    contents = {
        Path("envci.tar"): [ArchiveImage(("envci.local/envci:0.1.0",), "sha256:new", 3, "docker")],
        Path("pause.tar"): [ArchiveImage(("envci.local/pause:3.10",), "sha256:p", 1, "docker")],
        Path("index.tar"): [ArchiveImage(("envci.local/multi:1",), "sha256:m", 1, "oci")],
    }
    present = ["envci.local/envci:0.1.0", "envci.local/pause:3.10", "envci.local/multi:1"]
    stored = {"envci.local/envci:0.1.0": "sha256:old", "envci.local/pause:3.10": "sha256:p"}  # multi: an index, unknown
    assert archives_to_import(contents, present, stored) == [Path("envci.tar")]


LISTING_CTR = """#!/bin/sh
echo "$@" >> "{calls}"
for last; do :; done
case "$*" in
  *" images ls -q") cat "{present}" ;;
  *" images ls") cat "{listing}" ;;
  *" content get "*) cat "{blobs}/$last" ;;
esac
"""


def test_ensure_loaded_compares_the_config_containerd_holds(tmp_path: Path, node: dict[str, Path]) -> None:
    """A rebuilt image keeps its tag; the manifest containerd stores under it names the old config."""
    archive = _archive(tmp_path, "envci.local/a:1")
    [image] = read_archive(archive)
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    listing = tmp_path / "listing"
    node["ctr"].write_text(LISTING_CTR.format(calls=node["calls"], present=node["present"], listing=listing, blobs=blobs))
    node["present"].write_text("envci.local/a:1\n")
    listing.write_text(
        "REF TYPE DIGEST SIZE PLATFORMS LABELS\n"
        "envci.local/a:1 application/vnd.docker.distribution.manifest.v2+json sha256:m1 1.0 KiB linux/amd64 -\n"
    )

    (blobs / "sha256:m1").write_text(json.dumps({"schemaVersion": 2, "config": {"digest": "sha256:" + "0" * 64}}))
    assert ensure_loaded([archive], node["socket"], node["ctr"]) == [archive]

    (blobs / "sha256:m1").write_text(json.dumps({"schemaVersion": 2, "config": {"digest": image.config_digest}}))
    assert ensure_loaded([archive], node["socket"], node["ctr"]) == []
    assert _imports(node) == [str(archive)]


def test_ensure_loaded_imports_what_is_missing_then_nothing(tmp_path: Path, node: dict[str, Path]) -> None:
    pause = _archive(tmp_path, "envci.local/pause:3.10")
    dns = _archive(tmp_path, "envci.local/coredns:1.15.0")
    node["present"].write_text("envci.local/pause:3.10\n")

    assert ensure_loaded([pause, dns], node["socket"], node["ctr"]) == [dns]
    assert _imports(node) == [str(dns)]
    assert f"--address {node['socket']} --namespace k8s.io images import --all-platforms {dns}" in node["calls"].read_text()

    node["present"].write_text("envci.local/pause:3.10\nenvci.local/coredns:1.15.0\n")
    assert ensure_loaded([pause, dns], node["socket"], node["ctr"]) == []
    assert _imports(node) == [str(dns)]


def test_one_bad_archive_loads_nothing(tmp_path: Path, node: dict[str, Path]) -> None:
    good = _archive(tmp_path, "envci.local/a:1")
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"\0" * 10)
    with pytest.raises(ConfigError, match="bad.tar"):
        load_archives([good, bad], node["socket"], node["ctr"])
    assert node["calls"].read_text() == ""


def test_no_socket_means_the_node_is_not_running(tmp_path: Path, node: dict[str, Path]) -> None:
    node["socket"].unlink()
    with pytest.raises(NotReadyError, match="real node is not running") as info:
        load_archives([_archive(tmp_path, "envci.local/a:1")], node["socket"], node["ctr"])
    assert info.value.hint == "run `envci cluster up`"


def test_a_socket_nobody_answers_on_means_the_node_is_not_running(tmp_path: Path, node: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTR_REFUSED", "1")  # the socket file outlived its containerd (a stop, a reboot)
    with pytest.raises(NotReadyError, match="real node is not running") as info:
        ensure_loaded([_archive(tmp_path, "envci.local/a:1")], node["socket"], node["ctr"])
    assert info.value.hint == "run `envci cluster up`"


def test_a_failed_import_is_an_infrastructure_error_with_ctr_s_words(tmp_path: Path, node: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTR_FAIL", "1")
    with pytest.raises(InfrastructureError, match="content digest mismatch"):
        load_archives([_archive(tmp_path, "envci.local/a:1")], node["socket"], node["ctr"])


def _cli(monkeypatch: pytest.MonkeyPatch, node: dict[str, Path], *argv: str) -> int:
    from envci.images import containerd

    monkeypatch.setattr(containerd, "default_containerd_socket", lambda: node["socket"])
    monkeypatch.setattr(command.cluster, "containerd_socket", lambda: node["socket"], raising=False)
    monkeypatch.setattr(containerd, "default_ctr", lambda: node["ctr"])
    return command.main("load-image", "json", list(argv))


def test_cluster_load_image_prints_what_it_loaded(tmp_path: Path, node: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    archive = _archive(tmp_path, "envci.local/a:1", "envci.local/b:1")
    assert _cli(monkeypatch, node, str(archive)) == ExitCode.OK
    assert json.loads(capsys.readouterr().out) == [
        {"archive": str(archive), "images": ["envci.local/a:1"]},
        {"archive": str(archive), "images": ["envci.local/b:1"]},
    ]
    assert _imports(node) == [str(archive)]


def test_cluster_load_image_exit_codes(tmp_path: Path, node: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.tar"
    empty.write_bytes(b"")
    assert _cli(monkeypatch, node, str(empty)) == ExitCode.BAD_INPUT
    assert "empty.tar: not a readable tar archive (empty file)" in capsys.readouterr().err
    assert _cli(monkeypatch, node) == ExitCode.BAD_INPUT
    node["socket"].unlink()
    assert _cli(monkeypatch, node, str(_archive(tmp_path, "envci.local/a:1"))) == ExitCode.NOT_READY
    assert "run `envci cluster up`" in capsys.readouterr().err
    assert _imports(node) == []
