"""Slimming the envci image's site-packages: what goes, what stays, and the metadata told the truth after.

Built on small fake `pip install --target` directories; the real one is slimmed by
`python -m envci.images build`, which logs what it left out.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import shutil
import subprocess
from pathlib import Path

import pytest

from envci.errors import ConfigError
from envci.images import definitions as d
from envci.images import slim


def record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode().rstrip("=")


def install(site: Path, name: str, version: str, files: dict[str, bytes], requires: tuple[str, ...] = ()) -> Path:
    """A distribution as pip lays it out: its files, METADATA and a RECORD (CRLF, like pip's) listing them."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(f"Requires-Dist: {r}\n" for r in requires)
    (info / "METADATA").write_text(metadata)
    rows = []
    for rel, data in files.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_bytes(data)
        rows.append([rel, record_hash(data), str(len(data))])
    rows.append([f"{info.name}/METADATA", record_hash(metadata.encode()), str(len(metadata))])
    rows.append([f"{info.name}/RECORD", "", ""])
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    (info / "RECORD").write_bytes(out.getvalue().encode())
    return info


def record_rows(info: Path) -> list[list[str]]:
    return [row for row in csv.reader(io.StringIO((info / "RECORD").read_bytes().decode())) if row]


@pytest.fixture
def site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    install(site, "kubernetes", "37.0.1", {"kubernetes/__init__.py": b"", "kubernetes/aio/__init__.py": b""}, ("aiohttp<4,>=3", "urllib3>=2"))
    install(site, "aiohttp", "3.14.5", {"aiohttp/__init__.py": b"", "aiohttp/_websocket/reader.py": b"x"}, ("multidict<8,>=4.5",))
    install(site, "multidict", "7.2.1", {"multidict/__init__.py": b"", "multidict/_multidict.so": b"\x7fELF"})
    install(site, "urllib3", "2.8.0", {"urllib3/__init__.py": b""}, ('brotli>=1.0.9; extra == "brotli"', "aiohttp; extra == 'async'"))
    return site


def test_dropped_distributions_take_their_files_directories_and_metadata(site: Path) -> None:
    dropped = slim.drop_distributions(site, ["aiohttp", "MultiDict", "frozenlist"], required_by=["kubernetes"])
    assert dropped == ["aiohttp", "multidict"]  # frozenlist was never installed: nothing to do
    assert sorted(p.name for p in site.iterdir()) == ["kubernetes", "kubernetes-37.0.1.dist-info", "urllib3", "urllib3-2.8.0.dist-info"]
    assert set(slim.distributions(site)) == {"kubernetes", "urllib3"}


def test_a_distribution_that_stays_and_needs_a_dropped_one_stops_the_build(site: Path) -> None:
    with pytest.raises(ConfigError, match="kubernetes requires aiohttp, which would be left out") as info:
        slim.drop_distributions(site, ["aiohttp", "multidict"])
    assert info.value.field == "ENVCI_DROPPED_DISTRIBUTIONS" and "take it off that list" in str(info.value)
    assert (site / "aiohttp" / "__init__.py").is_file()  # nothing removed before the check


def test_requirements_under_an_extra_do_not_count_and_names_are_compared_canonically(site: Path) -> None:
    assert slim.requirements(slim.distributions(site)["urllib3"]) == set()
    assert slim.requirements(slim.distributions(site)["kubernetes"]) == {"aiohttp", "urllib3"}
    assert slim.canonical_name("Aiohttp_Retry") == slim.canonical_name("aiohttp.retry") == "aiohttp-retry"


def test_a_record_entry_outside_the_site_is_left_alone(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install(site, "tool", "1.0", {"tool.py": b""})
    outside = tmp_path / "bin" / "tool"
    outside.parent.mkdir()
    outside.write_text("#!/usr/bin/python3\n")
    with (site / "tool-1.0.dist-info" / "RECORD").open("a") as f:
        f.write("../bin/tool,,\r\n")
    assert slim.drop_distributions(site, ["tool"]) == ["tool"]
    assert outside.is_file() and not any(site.iterdir())


def test_paths_and_aws_models_are_removed_and_records_follow(site: Path) -> None:
    models = {f"botocore/data/{svc}/2006-03-01/service-2.json.gz": b"m" for svc in ("s3", "ec2", "sts")}
    install(site, "botocore", "1.44.8", {"botocore/data/endpoints.json": b"{}", "botocore/tests/test_x.py": b"", **models})
    install(site, "boto3", "1.44.8", {"boto3/data/s3/resources-1.json": b"{}", "boto3/data/ec2/resources-1.json": b"{}"})

    assert slim.remove_paths(site, ["kubernetes/aio", "*/tests", "nothing/here"]) == ["kubernetes/aio", "botocore/tests"]
    assert slim.keep_only(site, ["botocore/data", "boto3/data", "absent/data"], ["s3", "sts"]) == ["botocore/data/ec2", "boto3/data/ec2"]
    assert sorted(p.name for p in (site / "botocore/data").iterdir()) == ["endpoints.json", "s3", "sts"]

    assert slim.refresh_records(site) == 3  # kubernetes, botocore, boto3; the others are unchanged
    listed = {row[0] for info in site.glob("*.dist-info") for row in record_rows(info)}
    assert "kubernetes/aio/__init__.py" not in listed and "botocore/data/ec2/2006-03-01/service-2.json.gz" not in listed
    assert {"kubernetes/__init__.py", "botocore/data/s3/2006-03-01/service-2.json.gz", "boto3/data/s3/resources-1.json"} <= listed
    assert slim.refresh_records(site) == 0  # nothing left to correct


def test_a_rewritten_file_gets_its_new_hash_and_size_in_pips_format(site: Path) -> None:
    info = slim.distributions(site)["multidict"]
    before = (info / "RECORD").read_bytes()
    stripped = b"\x7fELF, now without DWARF"
    (site / "multidict/_multidict.so").write_bytes(stripped)
    assert slim.refresh_records(site) == 1
    after = (info / "RECORD").read_bytes()
    assert after.count(b"\r\n") == before.count(b"\r\n") and b"\n" not in after.replace(b"\r\n", b"")
    assert ["multidict/_multidict.so", record_hash(stripped), str(len(stripped))] in record_rows(info)
    assert [row for row in record_rows(info) if row[0] != "multidict/_multidict.so"] == [
        row for row in csv.reader(io.StringIO(before.decode())) if row and row[0] != "multidict/_multidict.so"
    ]


def test_only_extension_modules_with_debug_information_are_stripped(tmp_path: Path) -> None:
    site = tmp_path / "site"
    for rel, data in {
        "yaml/_yaml.cpython-311-x86_64-linux-gnu.so": b"\x7fELF ... .debug_info ...",
        "pydantic_core/_pydantic_core.cpython-311-x86_64-linux-gnu.so": b"\x7fELF already stripped",
        "psycopg_binary.libs/libpq-e9b5c9ac.so.5.18": b"\x7fELF .debug_info",
        "psycopg_binary.libs/libcrypt-bc2db45e.so": b"\x7fELF .debug_info",
    }.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_bytes(data)
    calls: list[str] = []
    assert slim.strip_debug_info(site, lambda p: calls.append(p.relative_to(site).as_posix())) == ["yaml/_yaml.cpython-311-x86_64-linux-gnu.so"]
    assert calls == ["yaml/_yaml.cpython-311-x86_64-linux-gnu.so"]


@pytest.mark.skipif(not (shutil.which("gcc") and shutil.which("strip")), reason="needs gcc and binutils")
def test_strip_debug_takes_the_debug_information_and_the_module_still_loads(tmp_path: Path) -> None:
    """The real tool, on a real shared object: what the build runs on each module `strip_debug_info` picks."""
    source = tmp_path / "answer.c"
    source.write_text("int answer(void) { return 42; }\n")
    module = tmp_path / "site" / "answer.so"
    module.parent.mkdir()
    subprocess.run(["gcc", "-g", "-shared", "-fPIC", "-o", str(module), str(source)], check=True)
    picked = slim.strip_debug_info(module.parent, lambda p: subprocess.run(["strip", "--strip-debug", str(p)], check=True))
    assert picked == ["answer.so"] and b".debug_info" not in module.read_bytes()
    import ctypes

    assert ctypes.CDLL(str(module)).answer() == 42


def test_the_lists_keep_what_envci_and_boto3_use() -> None:
    """S3 is what envci creates clients for; the rest are the clients boto3's credential chain makes."""
    assert {"s3", "sts", "sso", "sso-oidc"} <= set(d.AWS_SERVICES)
    kept = {"kubernetes", "boto3", "botocore", "psycopg", "psycopg-binary", "pydantic", "jinja2", "pyyaml", "requests", "urllib3"}
    assert not kept & {slim.canonical_name(n) for n in d.ENVCI_DROPPED_DISTRIBUTIONS}
    assert d.ENVCI_DROPPED_FOR == ("kubernetes",) and "kubernetes/aio" in d.ENVCI_SITE_REMOVE
