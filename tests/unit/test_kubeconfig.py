"""envci.kube.kubeconfig: connection settings read as kubectl reads them, without the kubernetes package.

Exec plugins are real processes (a small Python script run by this interpreter), so what is tested is
what a plugin sees: its environment, KUBERNETES_EXEC_INFO, and how often it runs.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from envci.errors import InfrastructureError
from envci.kube import kubeconfig
from envci.kube.kubeconfig import ExecAuth, KubeconfigError, current_namespace, load

PLUGIN = """\
import json, os, pathlib, sys
info = json.loads(os.environ["KUBERNETES_EXEC_INFO"])
state = pathlib.Path(os.environ["PLUGIN_STATE"])
runs = int(state.read_text()) + 1 if state.exists() else 1
state.write_text(str(runs))
pathlib.Path(str(state) + ".info").write_text(json.dumps(info))
pathlib.Path(str(state) + ".env").write_text(os.environ.get("PLUGIN_GREETING", ""))
mode = os.environ.get("PLUGIN_MODE", "token")
if mode == "fail":
    sys.stderr.write("x" * 1000 + " login expired, token was Bearer s3cr3t-token\\n")
    sys.exit(3)
if mode == "garbage":
    print("here is your token: s3cr3t-token")
    sys.exit(0)
status = {}
if mode in ("token", "both"):
    status["token"] = "token-%d" % runs
if mode in ("cert", "both"):
    status["clientCertificateData"] = "CERT %d" % runs
    status["clientKeyData"] = "KEY %d" % runs
expires = os.environ.get("PLUGIN_EXPIRES", "")
if expires.startswith("@"):  # read from a file, so a test can change it between runs
    expires = pathlib.Path(expires[1:]).read_text()
if expires:
    status["expirationTimestamp"] = expires
print(json.dumps({"apiVersion": os.environ.get("PLUGIN_VERSION", info["apiVersion"]), "kind": "ExecCredential", "status": status}))
"""

EXPIRES = "2030-01-01T00:00:00Z"
EXPIRES_AT = datetime(2030, 1, 1, tzinfo=timezone.utc).timestamp()


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def no_ambient_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no KUBECONFIG, an empty home and no pod environment."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
        monkeypatch.delenv(name, raising=False)


def write(path: Path, config: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path


def config(
    *,
    cluster: dict[str, Any] | None = None,
    user: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    current: str | None = "ctx",
) -> dict[str, Any]:
    """A one-context kubeconfig: context "ctx" -> cluster "c", user "ci"."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": current,
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443/", **(cluster or {})}}],
        "users": [{"name": "ci", "user": user or {}}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "ci", **(context or {})}}],
    }


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def exec_user(tmp_path: Path, *, mode: str = "token", version: str = "v1", env: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    script = tmp_path / "plugin.py"
    script.write_text(PLUGIN)
    entries = {"PLUGIN_STATE": str(tmp_path / "runs"), "PLUGIN_MODE": mode, **(env or {})}
    return {
        "exec": {
            "apiVersion": f"client.authentication.k8s.io/{version}",
            "command": sys.executable,
            "args": [str(script)],
            "env": [{"name": k, "value": v} for k, v in entries.items()],
            "interactiveMode": "Never",
            **extra,
        }
    }


def runs(tmp_path: Path) -> int:
    state = tmp_path / "runs"
    return int(state.read_text()) if state.exists() else 0


def exec_info(tmp_path: Path) -> dict[str, Any]:
    info: dict[str, Any] = json.loads((tmp_path / "runs.info").read_text())
    return info


# --- files, merging, paths ---------------------------------------------------------------------


def test_single_file(tmp_path: Path) -> None:
    path = write(
        tmp_path / "kc.yaml",
        config(
            cluster={"insecure-skip-tls-verify": True, "tls-server-name": "api.internal", "proxy-url": "http://proxy:3128"},
            user={"token": "abc"},
            context={"namespace": "team-a"},
        ),
    )
    ep = load(str(path))
    assert ep.server == "https://127.0.0.1:6443"
    assert (ep.ca_file, ep.cert_file, ep.key_file) == (None, None, None)
    assert ep.insecure is True
    assert ep.tls_server_name == "api.internal"
    assert ep.proxy_url == "http://proxy:3128"
    assert ep.namespace == "team-a"
    assert ep.source == f'kubeconfig {path} (context "ctx")'
    assert ep.auth.headers() == {"Authorization": "Bearer abc"}
    assert ep.auth.refresh() is False
    assert "abc" not in repr(ep)


def test_namespace_defaults_and_context_argument(tmp_path: Path) -> None:
    data = config(user={"token": "abc"})
    data["contexts"].append({"name": "other", "context": {"cluster": "c", "user": "ci", "namespace": "ns-2"}})
    path = write(tmp_path / "kc.yaml", data)
    assert load(str(path)).namespace == "default"
    assert load(str(path), "other").namespace == "ns-2"


def test_kubeconfig_list_merges_first_definition_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = write(
        tmp_path / "a" / "first.yaml",
        {"clusters": [{"name": "c", "cluster": {"server": "https://first:6443"}}], "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "ci"}}]},
    )
    second = write(
        tmp_path / "b" / "second.yaml",
        {
            "current-context": "ctx",
            "clusters": [{"name": "c", "cluster": {"server": "https://second:6443"}}],
            "users": [{"name": "ci", "user": {"token": "from-second"}}],
            "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "ci", "namespace": "ignored"}}],
        },
    )
    third = write(tmp_path / "c" / "third.yaml", {"current-context": "ignored-too", "users": [{"name": "ci", "user": {"token": "from-third"}}]})
    missing = tmp_path / "missing.yaml"
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(missing), str(first), str(second), str(third)]))
    ep = load()
    assert ep.server == "https://first:6443"  # cluster from the first file that names it
    assert ep.namespace == "default"  # the whole context from first.yaml, not field by field
    assert ep.auth.headers() == {"Authorization": "Bearer from-second"}
    assert ep.source == f'kubeconfig {first} (context "ctx")'
    # An explicit path may be a list too, read the same way.
    assert load(os.pathsep.join([str(first), str(second)])).server == "https://first:6443"


def test_default_file_in_home(tmp_path: Path) -> None:
    write(tmp_path / "home" / ".kube" / "config", config(user={"token": "home"}))
    assert load().auth.headers() == {"Authorization": "Bearer home"}


def test_relative_paths_resolve_against_the_kubeconfig_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    certs = tmp_path / "cfg" / "certs"
    certs.mkdir(parents=True)
    for name in ("ca.crt", "client.crt", "client.key", "token"):
        (certs / name).write_text(name)
    path = write(
        tmp_path / "cfg" / "kc.yaml",
        config(
            cluster={"certificate-authority": "certs/ca.crt"},
            user={"client-certificate": "certs/client.crt", "client-key": "./certs/client.key", "tokenFile": "certs/token"},
        ),
    )
    monkeypatch.chdir(tmp_path)  # a different directory from the kubeconfig's
    ep = load(str(path))
    assert ep.ca_file == str(certs / "ca.crt")
    assert ep.cert_file == str(certs / "client.crt")
    assert ep.key_file == str(certs / "client.key")
    assert ep.auth.headers() == {"Authorization": "Bearer token"}


def test_data_fields_go_to_private_temp_files(tmp_path: Path) -> None:
    ca, cert, key = b"-----BEGIN CERTIFICATE-----\nCA\n", b"CERT\n", b"KEY\n"
    path = write(
        tmp_path / "kc.yaml",
        config(
            cluster={"certificate-authority-data": b64(ca), "certificate-authority": "ignored.crt"},
            user={"client-certificate-data": b64(cert), "client-key-data": b64(key)},
        ),
    )
    ep = load(str(path))
    assert ep.ca_file and ep.cert_file and ep.key_file
    for file, content in ((ep.ca_file, ca), (ep.cert_file, cert), (ep.key_file, key)):
        assert Path(file).read_bytes() == content
        assert stat.S_IMODE(os.stat(file).st_mode) == 0o600
        assert not file.startswith(str(tmp_path))
    directory = os.path.dirname(ep.ca_file)
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    assert {os.path.dirname(ep.cert_file), os.path.dirname(ep.key_file)} == {directory}
    assert load(str(path)).key_file == ep.key_file  # loading again writes nothing new


def test_private_files_are_removed_at_exit(tmp_path: Path) -> None:
    path = write(tmp_path / "kc.yaml", config(user={"client-certificate-data": b64(b"C"), "client-key-data": b64(b"K")}))
    code = "import sys; from envci.kube.kubeconfig import load; print(load(sys.argv[1]).key_file)"
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[2])
    key_file = out.stdout.strip()
    assert key_file and not os.path.exists(key_file) and not os.path.exists(os.path.dirname(key_file))


# --- static credentials ------------------------------------------------------------------------


def test_token_file_is_reread_at_most_once_a_minute(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("one\n")
    clock = FakeClock(1000.0)
    ep = load(str(write(tmp_path / "kc.yaml", config(user={"tokenFile": "token"}))), clock=clock)
    assert ep.auth.headers() == {"Authorization": "Bearer one"}
    token.write_text("two")
    clock.now += 59
    assert ep.auth.headers() == {"Authorization": "Bearer one"}
    clock.now += 1
    assert ep.auth.headers() == {"Authorization": "Bearer two"}
    token.write_text("three")
    assert ep.auth.refresh() is True  # after a 401: reread now
    assert ep.auth.headers() == {"Authorization": "Bearer three"}
    assert ep.auth.refresh() is False  # nothing new: retrying would not help
    token.unlink()
    clock.now += 60
    assert ep.auth.headers() == {"Authorization": "Bearer three"}  # a failed reread keeps the last token


def test_basic_auth(tmp_path: Path) -> None:
    ep = load(str(write(tmp_path / "kc.yaml", config(user={"username": "admin", "password": "p:w"}))))
    assert ep.auth.headers() == {"Authorization": "Basic " + b64(b"admin:p:w")}


def test_no_credentials_means_no_headers(tmp_path: Path) -> None:
    data = config()
    del data["contexts"][0]["context"]["user"]
    ep = load(str(write(tmp_path / "kc.yaml", data)))
    assert ep.auth.headers() == {}
    assert ep.auth.refresh() is False


def test_oidc_uses_the_stored_id_token(tmp_path: Path) -> None:
    user = {"auth-provider": {"name": "oidc", "config": {"id-token": "eyJ.id.token", "refresh-token": "r"}}}
    ep = load(str(write(tmp_path / "kc.yaml", config(user=user))))
    assert ep.auth.headers() == {"Authorization": "Bearer eyJ.id.token"}
    assert ep.auth.refresh() is False


@pytest.mark.parametrize(("provider", "fix"), [("gcp", "gke-gcloud-auth-plugin"), ("azure", "kubelogin")])
def test_removed_auth_providers_are_refused(tmp_path: Path, provider: str, fix: str) -> None:
    path = write(tmp_path / "kc.yaml", config(user={"auth-provider": {"name": provider, "config": {}}}))
    with pytest.raises(KubeconfigError) as e:
        load(str(path))
    text = str(e.value)
    assert f"{path}: users[name=ci].user.auth-provider" in text
    assert "removed from kubectl" in text and fix in text


def test_impersonation_is_refused_rather_than_ignored(tmp_path: Path) -> None:
    path = write(tmp_path / "kc.yaml", config(user={"token": "t", "as": "someone"}))
    with pytest.raises(KubeconfigError, match=r"users\[name=ci\]\.user\.as: impersonation"):
        load(str(path))


# --- exec plugins ------------------------------------------------------------------------------


def test_exec_v1_token_info_env_and_caching(tmp_path: Path) -> None:
    extension = {"audience": "envci"}
    path = write(
        tmp_path / "kc.yaml",
        config(
            cluster={"certificate-authority-data": b64(b"CA PEM"), "extensions": [{"name": "client.authentication.k8s.io/exec", "extension": extension}]},
            user=exec_user(tmp_path, env={"PLUGIN_GREETING": "hello", "PLUGIN_EXPIRES": EXPIRES}, provideClusterInfo=True),
        ),
    )
    clock = FakeClock(EXPIRES_AT - 3600)
    ep = load(str(path), clock=clock)
    assert runs(tmp_path) == 1  # run at load, so a broken plugin fails early with the kubeconfig named
    assert (tmp_path / "runs.env").read_text() == "hello"
    assert exec_info(tmp_path) == {
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "spec": {
            "interactive": False,
            "cluster": {"server": "https://127.0.0.1:6443", "certificate-authority-data": b64(b"CA PEM"), "config": extension},
        },
    }
    assert ep.auth.headers() == {"Authorization": "Bearer token-1"}
    assert ep.auth.headers() == {"Authorization": "Bearer token-1"}
    assert runs(tmp_path) == 1  # cached until it expires
    assert ep.auth.refresh() is True  # after a 401: run again
    assert ep.auth.headers() == {"Authorization": "Bearer token-2"}
    clock.now = EXPIRES_AT - 61
    assert ep.auth.headers() == {"Authorization": "Bearer token-2"}
    clock.now = EXPIRES_AT - 59  # inside the margin: renewed before it runs out
    assert ep.auth.headers() == {"Authorization": "Bearer token-3"}
    assert runs(tmp_path) == 3


def test_exec_v1beta1_without_cluster_info(tmp_path: Path) -> None:
    ep = load(str(write(tmp_path / "kc.yaml", config(user=exec_user(tmp_path, version="v1beta1")))))
    assert ep.auth.headers() == {"Authorization": "Bearer token-1"}
    assert exec_info(tmp_path) == {"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential", "spec": {"interactive": False}}
    assert ep.auth.headers() == {"Authorization": "Bearer token-1"}  # no expiry: kept until a refresh
    assert runs(tmp_path) == 1


def test_exec_runs_once_for_concurrent_threads(tmp_path: Path) -> None:
    expires = tmp_path / "expires"
    expires.write_text(EXPIRES)
    user = exec_user(tmp_path, env={"PLUGIN_EXPIRES": f"@{expires}"})
    clock = FakeClock(EXPIRES_AT - 3600)
    ep = load(str(write(tmp_path / "kc.yaml", config(user=user))), clock=clock)
    expires.write_text("2031-01-01T00:00:00Z")
    clock.now = EXPIRES_AT  # expired: every thread wants a new one, the first to get the lock renews it
    seen: list[dict[str, str]] = []
    threads = [threading.Thread(target=lambda: seen.append(ep.auth.headers())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert runs(tmp_path) == 2
    assert seen == [{"Authorization": "Bearer token-2"}] * 8


def test_exec_client_certificate(tmp_path: Path) -> None:
    path = write(tmp_path / "kc.yaml", config(user={**exec_user(tmp_path, mode="cert"), "client-certificate-data": b64(b"static"), "client-key-data": b64(b"static")}))
    ep = load(str(path))
    assert ep.cert_file and ep.key_file
    assert Path(ep.cert_file).read_text() == "CERT 1"
    assert Path(ep.key_file).read_text() == "KEY 1"
    assert stat.S_IMODE(os.stat(ep.key_file).st_mode) == 0o600
    assert ep.auth.headers() == {}
    assert ep.auth.cert_generation == 1
    assert ep.auth.refresh() is True
    assert Path(ep.cert_file).read_text() == "CERT 2"  # same path, new content: reload the TLS context
    assert Path(ep.key_file).read_text() == "KEY 2"
    assert ep.auth.cert_generation == 2


def test_exec_failure_shows_exit_code_and_stderr_tail_without_the_token(tmp_path: Path) -> None:
    path = write(tmp_path / "kc.yaml", config(user=exec_user(tmp_path, mode="fail")))
    with pytest.raises(KubeconfigError) as e:
        load(str(path))
    text = str(e.value)
    assert f"kubeconfig {path}: users[name=ci].user.exec: plugin" in text
    assert "exit code 3" in text and "login expired" in text
    assert "s3cr3t-token" not in text
    assert text.count("x") <= kubeconfig.STDERR_TAIL
    assert isinstance(e.value, InfrastructureError)


def test_exec_output_is_never_quoted(tmp_path: Path) -> None:
    path = write(tmp_path / "kc.yaml", config(user=exec_user(tmp_path, mode="garbage")))
    with pytest.raises(KubeconfigError, match="printed no ExecCredential JSON") as e:
        load(str(path))
    assert "s3cr3t" not in str(e.value)


def test_exec_api_version_mismatch(tmp_path: Path) -> None:
    user = exec_user(tmp_path, env={"PLUGIN_VERSION": "client.authentication.k8s.io/v1beta1"})
    with pytest.raises(KubeconfigError, match="returned apiVersion 'client.authentication.k8s.io/v1beta1'"):
        load(str(write(tmp_path / "kc.yaml", config(user=user))))


def test_exec_missing_command_shows_install_hint(tmp_path: Path) -> None:
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "envci-no-such-plugin", "installHint": "brew install no-such-plugin\n"}}
    path = write(tmp_path / "kc.yaml", config(user=user))
    with pytest.raises(KubeconfigError) as e:
        load(str(path))
    assert "users[name=ci].user.exec.command: cannot run 'envci-no-such-plugin': not found on PATH" in str(e.value)
    assert e.value.hint == "brew install no-such-plugin"


def test_exec_relative_command_and_bare_name_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "plugin.py"
    script.write_text(PLUGIN)
    wrapper = tmp_path / "cfg" / "bin" / "kube-plugin"
    wrapper.parent.mkdir(parents=True)
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{script}" "$@"\n')
    wrapper.chmod(0o755)
    user = exec_user(tmp_path)
    user["exec"].update(command="bin/kube-plugin", args=[])
    path = write(tmp_path / "cfg" / "kc.yaml", config(user=user))
    monkeypatch.chdir(tmp_path)
    assert load(str(path)).auth.headers() == {"Authorization": "Bearer token-1"}
    user["exec"]["command"] = "kube-plugin"
    write(path, config(user=user))
    monkeypatch.setenv("PATH", f"{wrapper.parent}{os.pathsep}{os.environ['PATH']}")
    assert load(str(path)).auth.headers() == {"Authorization": "Bearer token-2"}


def test_exec_unsupported_api_version(tmp_path: Path) -> None:
    user = exec_user(tmp_path, version="v1alpha1")
    with pytest.raises(KubeconfigError, match=r"exec\.apiVersion is 'client.authentication.k8s.io/v1alpha1'"):
        load(str(write(tmp_path / "kc.yaml", config(user=user))))


def test_current_namespace_runs_no_plugin(tmp_path: Path) -> None:
    path = write(tmp_path / "kc.yaml", config(user=exec_user(tmp_path), context={"namespace": "team-b"}))
    assert current_namespace(str(path)) == "team-b"
    assert runs(tmp_path) == 0


# --- in-cluster --------------------------------------------------------------------------------


def service_account(tmp_path: Path, namespace: str | None = "ci-jobs") -> Path:
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text("sa-token\n")
    (sa / "ca.crt").write_text("CA")
    if namespace is not None:
        (sa / "namespace").write_text(namespace)
    return sa


def test_in_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sa = service_account(tmp_path)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    clock = FakeClock(0.0)
    ep = load(incluster_dir=str(sa), clock=clock)
    assert ep.server == "https://10.96.0.1:443"
    assert ep.ca_file == str(sa / "ca.crt")
    assert ep.namespace == "ci-jobs"
    assert ep.source == "in-cluster service account"
    assert ep.auth.headers() == {"Authorization": "Bearer sa-token"}
    (sa / "token").write_text("rotated")
    clock.now = 60
    assert ep.auth.headers() == {"Authorization": "Bearer rotated"}


def test_in_cluster_ipv6_and_default_namespace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sa = service_account(tmp_path, namespace=None)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    ep = load(incluster_dir=str(sa))
    assert ep.server == "https://[fd00::1]:6443"
    assert ep.namespace == "default"


def test_in_cluster_without_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sa = service_account(tmp_path)
    (sa / "token").unlink()
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    with pytest.raises(KubeconfigError, match="in-cluster service account.*cannot read token file"):
        load(incluster_dir=str(sa))


# --- errors ------------------------------------------------------------------------------------


def test_no_kubeconfig_and_not_in_a_cluster(tmp_path: Path) -> None:
    with pytest.raises(KubeconfigError) as e:
        load(incluster_dir=str(tmp_path / "nothing"))
    assert "KUBECONFIG is not set" in str(e.value) and "KUBERNETES_SERVICE_HOST" in str(e.value)
    assert e.value.hint and "KUBECONFIG" in e.value.hint


def test_context_requested_without_kubeconfig() -> None:
    with pytest.raises(KubeconfigError, match='context "kind-x" was requested but there is no kubeconfig'):
        load(context="kind-x")


def test_missing_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(KubeconfigError, match=f"kubeconfig {tmp_path}/nope.yaml .*does not exist"):
        load(str(tmp_path / "nope.yaml"))
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(tmp_path / "a"), str(tmp_path / "b")]))
    with pytest.raises(KubeconfigError, match=r"none of the kubeconfig files in \$KUBECONFIG exists"):
        load()


def test_invalid_yaml_names_the_file_not_its_content(tmp_path: Path) -> None:
    path = tmp_path / "kc.yaml"
    path.write_text("users:\n- name: ci\n  user:\n    token: s3cr3t: [\n")
    with pytest.raises(KubeconfigError) as e:
        load(str(path))
    assert f"kubeconfig {path} is not valid YAML at line 4" in str(e.value)
    assert "s3cr3t" not in str(e.value)
    path.write_text("- just\n- a list\n")
    with pytest.raises(KubeconfigError, match="is not a mapping"):
        load(str(path))


def test_unreadable_kubeconfig(tmp_path: Path) -> None:
    path = tmp_path / "kc.yaml"
    path.mkdir()  # exists, but cannot be read as a file
    with pytest.raises(KubeconfigError, match=f"cannot read kubeconfig {path}"):
        load(str(path))


def test_no_current_context(tmp_path: Path) -> None:
    path = write(tmp_path / "kc.yaml", config(current=None))
    with pytest.raises(KubeconfigError, match=r"sets no current-context \(contexts: ctx\)") as e:
        load(str(path))
    assert e.value.hint and "use-context" in e.value.hint


def test_unknown_context(tmp_path: Path) -> None:
    path = write(tmp_path / "kc.yaml", config(current="gone"))
    with pytest.raises(KubeconfigError, match=r'context "gone" is the current-context but kubeconfig .* does not define it \(contexts: ctx\)'):
        load(str(path))
    with pytest.raises(KubeconfigError, match=r'context "other" was requested'):
        load(str(path), "other")


def test_unknown_cluster_and_user(tmp_path: Path) -> None:
    path = write(tmp_path / "kc.yaml", config(context={"cluster": "nowhere"}))
    with pytest.raises(KubeconfigError, match=r'contexts\[name=ctx\]\.context\.cluster names cluster "nowhere".*\(clusters: c\)'):
        load(str(path))
    write(path, config(context={"user": "nobody"}))
    with pytest.raises(KubeconfigError, match=r'contexts\[name=ctx\]\.context\.user names user "nobody".*\(users: ci\)'):
        load(str(path))


def test_cluster_without_server(tmp_path: Path) -> None:
    data = config()
    del data["clusters"][0]["cluster"]["server"]
    path = write(tmp_path / "kc.yaml", data)
    with pytest.raises(KubeconfigError, match=rf"kubeconfig {path}: clusters\[name=c\]\.cluster\.server is missing"):
        load(str(path))


def test_unreadable_referenced_file_names_the_field(tmp_path: Path) -> None:
    (tmp_path / "client.crt").write_text("C")
    path = write(tmp_path / "kc.yaml", config(user={"client-certificate": "client.crt", "client-key": "missing.key"}))
    with pytest.raises(KubeconfigError) as e:
        load(str(path))
    assert str(e.value).startswith(f"kubeconfig {path}: users[name=ci].user.client-key: cannot read {tmp_path}/missing.key")
    assert e.value.hint and str(tmp_path) in e.value.hint
    write(path, config(user={"tokenFile": "missing-token"}))
    with pytest.raises(KubeconfigError, match=r"users\[name=ci\]\.user\.tokenFile: cannot read token file"):
        load(str(path))


def test_certificate_without_key(tmp_path: Path) -> None:
    path = write(tmp_path / "kc.yaml", config(user={"client-certificate-data": b64(b"C")}))
    with pytest.raises(KubeconfigError, match=r"users\[name=ci\]\.user\.client-key \(or client-key-data\) is missing"):
        load(str(path))


def test_bad_base64(tmp_path: Path) -> None:
    path = write(tmp_path / "kc.yaml", config(cluster={"certificate-authority-data": "not base64!"}))
    with pytest.raises(KubeconfigError, match=r"clusters\[name=c\]\.cluster\.certificate-authority-data is not valid base64"):
        load(str(path))


def test_malformed_entries(tmp_path: Path) -> None:
    path = write(tmp_path / "kc.yaml", {"current-context": "ctx", "clusters": [{"cluster": {"server": "https://x"}}]})
    with pytest.raises(KubeconfigError, match=r"clusters\[0\] must be a mapping with a name"):
        load(str(path))


def test_current_namespace_never_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "kc.yaml", config(context={"namespace": "team-c"}))
    monkeypatch.setenv("KUBECONFIG", str(path))
    assert current_namespace() == "team-c"
    path.write_text(": not yaml [")
    assert current_namespace() == "default"
    assert current_namespace(str(tmp_path / "missing.yaml")) == "default"
    write(path, config(current="gone"))
    assert current_namespace() == "default"


def test_exec_auth_is_what_load_returns(tmp_path: Path) -> None:
    ep = load(str(write(tmp_path / "kc.yaml", config(user=exec_user(tmp_path)))))
    assert isinstance(ep.auth, ExecAuth)
    assert "token-1" not in repr(ep)


# --- import cost -------------------------------------------------------------------------------


def test_import_does_not_load_the_kubernetes_package() -> None:
    code = (
        "import sys, envci.kube.kubeconfig\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('kubernetes', 'urllib3', 'requests', 'pydantic'))\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[2])
    assert out.stdout.strip() == "[]"
