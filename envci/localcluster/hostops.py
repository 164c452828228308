"""Thin adapters for the host: processes, links, routes, iptables, mounts, sysctls, cgroups.

Every function here does one host operation and reports failures as `InfrastructureError`s that
say what to do; decisions (which rules, which files) are made in nodespec.py. Removal functions are
idempotent: `down` calls them on a half-made node, after a crash or after a reboot.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from envci.errors import InfrastructureError

IPTABLES_TABLES = ("filter", "nat", "mangle", "raw")
OUR_CHAIN_PREFIXES = ("KUBE-", "CNI-", "ENVCI-")
"""Chains the node's components create: kube-proxy and the kubelet (KUBE-), the portmap plugin
(CNI-), envci's guard and policy chains (ENVCI-)."""


def run(args: Sequence[str], *, check: bool = True, input_text: str | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(list(args), capture_output=True, text=True, input=input_text, timeout=timeout, check=False)
    except FileNotFoundError as e:
        raise InfrastructureError(f"`{args[0]}` is not installed", hint="run `bash .ci/run` or install the node's Debian packages (iproute2, iptables)") from e
    except subprocess.TimeoutExpired as e:
        raise InfrastructureError(f"`{' '.join(args[:4])}` did not finish within {timeout:.0f}s") from e
    if check and result.returncode != 0:
        raise InfrastructureError(f"`{' '.join(args)}` failed (exit {result.returncode}): {(result.stderr or result.stdout).strip()[:400]}")
    return result


# --- processes ------------------------------------------------------------------------------------------

def spawn(args: Sequence[str], *, log: Path, pid_file: Path, env: Mapping[str, str]) -> int:
    """Start a long-running program in a session of its own (a Ctrl-C in the terminal that ran
    `envci cluster up` must not stop the node), output appended to `log`, its pid recorded."""
    log.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(  # noqa: S603 - arguments are ours
            list(args), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=dict(env), start_new_session=True
        )
    pid_file.write_text(f"{proc.pid}\n")
    return proc.pid


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def alive(pid: int) -> bool:
    """True while the process runs (a zombie counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return False


def recorded_pid(pid_file: Path, is_ours: Callable[[list[str]], bool]) -> int | None:
    """The pid in `pid_file` if that process still runs and `is_ours(argv)` (pids are reused after a reboot)."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    args = cmdline(pid)
    return pid if args and is_ours(args) and alive(pid) else None


def processes_matching(predicate: Callable[[list[str]], bool]) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and proc.name != str(os.getpid()):
            args = cmdline(int(proc.name))
            if args and predicate(args):
                found.append(int(proc.name))
    return found


def stop(pids: Iterable[int], *, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL whatever is left after `grace` seconds."""
    pids = [p for p in pids if alive(p)]
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(alive(p) for p in pids):
            time.sleep(0.05)
        pids = [p for p in pids if alive(p)]
        if not pids:
            return


def wait_for(path: Path, *, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() >= deadline:
            tail = ""
            if log and log.is_file():
                tail = "\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            raise InfrastructureError(f"{what} did not start within {timeout:.0f}s{tail}", hint=f"read {log}" if log else None)
        time.sleep(0.05)


def port_free(port: int, host: str = "0.0.0.0") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def port_owner(port: int) -> str:
    """Which program listens on a TCP port, for an error message ("" when unknown)."""
    result = run(["ss", "-ltnpH", f"sport = :{port}"], check=False)
    return result.stdout.strip().splitlines()[0] if result.stdout.strip() else ""


# --- sysctls --------------------------------------------------------------------------------------------

def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def read_sysctls(names: Iterable[str]) -> dict[str, str]:
    out = {}
    for name in names:
        with contextlib.suppress(OSError):
            out[name] = _sysctl_path(name).read_text().strip()
    return out


def write_sysctl(name: str, value: str) -> None:
    try:
        _sysctl_path(name).write_text(value)
    except OSError as e:
        raise InfrastructureError(
            f"cannot set {name}={value}: {e.strerror}",
            hint="the real node needs root and a kernel with bridge netfilter (br_netfilter); "
            "`envci cluster up --nodes simulated` needs neither",
        ) from e


# --- links and routes -----------------------------------------------------------------------------------

def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def bridge_ports(bridge: str) -> list[str]:
    brif = Path("/sys/class/net", bridge, "brif")
    return sorted(p.name for p in brif.iterdir()) if brif.is_dir() else []


def ensure_bridge(name: str, address: str) -> None:
    if not link_exists(name):
        run(["ip", "link", "add", name, "type", "bridge"])
    have = run(["ip", "-o", "-4", "addr", "show", "dev", name]).stdout
    if f" {address} " not in have and f" {address}\n" not in have:
        run(["ip", "addr", "replace", address, "dev", name])
    run(["ip", "link", "set", name, "up"])


def delete_link(name: str) -> None:
    if link_exists(name):
        run(["ip", "link", "del", name], check=False)


def route_replace(destination: str, device: str) -> None:
    run(["ip", "route", "replace", destination, "dev", device])


def routes_via_other_devices(destination: str, device: str) -> list[str]:
    """Routes for addresses in `destination` that point elsewhere: a clash with another network."""
    out = run(["ip", "-o", "route", "show", "match", destination], check=False).stdout
    return [line for line in out.splitlines() if line and not line.startswith("default") and f"dev {device}" not in line]


# --- iptables -------------------------------------------------------------------------------------------

def iptables_restore(text: str, *, ipv6: bool = False) -> None:
    run(["ip6tables-restore" if ipv6 else "iptables-restore", "--noflush", "--wait"], input_text=text)


def iptables_save(table: str, *, ipv6: bool = False) -> str:
    return run(["ip6tables-save" if ipv6 else "iptables-save", "-t", table], check=False).stdout


def ensure_chains(chains: Mapping[str, list[list[str]]], jumps: Sequence[tuple[str, str]]) -> None:
    """Fill each chain (filter table) with exactly its rules, and make each built-in chain jump to it
    once, first; in one iptables-restore, so no packet ever sees a half-written guard."""
    lines = ["*filter"]
    lines += [f":{chain} - [0:0]" for chain in chains]
    for chain, rules in chains.items():
        lines += [f"-A {chain} " + " ".join(_quote(arg) for arg in rule) for rule in rules]
    saved = iptables_save("filter")
    for builtin, chain in jumps:
        jump = f"-A {builtin} -j {chain}"
        for _ in range(saved.count(jump + "\n")):
            lines.append(f"-D {builtin} -j {chain}")
    for builtin, chain in reversed(jumps):
        lines.append(f"-I {builtin} 1 -j {chain}")
    lines.append("COMMIT")
    iptables_restore("\n".join(lines) + "\n")


def _quote(arg: str) -> str:
    return f'"{arg}"' if " " in arg else arg


def remove_our_chains(prefixes: Sequence[str] = OUR_CHAIN_PREFIXES) -> int:
    """Delete every rule that jumps to a chain with one of `prefixes`, then those chains, in every
    table, for IPv4 and IPv6. Returns how many chains went. Safe to call when there are none."""
    removed = 0
    for ipv6 in (False, True):
        for table in IPTABLES_TABLES:
            saved = iptables_save(table, ipv6=ipv6)
            if not saved:
                continue
            ours = [line[1:].split()[0] for line in saved.splitlines() if line.startswith(":") and line[1:].startswith(tuple(prefixes))]
            if not ours:
                continue
            lines = [f"*{table}"]
            for line in saved.splitlines():
                if not line.startswith("-A "):
                    continue
                parts = line.split()
                chain = parts[1]
                target = parts[parts.index("-j") + 1] if "-j" in parts else ""
                if chain not in ours and target in ours:
                    lines.append("-D" + line[2:])
            lines += [f"-F {c}" for c in ours] + [f"-X {c}" for c in ours] + ["COMMIT"]
            with contextlib.suppress(InfrastructureError):
                iptables_restore("\n".join(lines) + "\n", ipv6=ipv6)
                removed += len(ours)
    return removed


def our_chains(prefixes: Sequence[str] = OUR_CHAIN_PREFIXES) -> list[str]:
    """`table:chain` of every chain with one of `prefixes`, IPv4 and IPv6 (for `status` and tests)."""
    found = []
    for ipv6 in (False, True):
        for table in IPTABLES_TABLES:
            for line in iptables_save(table, ipv6=ipv6).splitlines():
                if line.startswith(":") and line[1:].startswith(tuple(prefixes)):
                    found.append(f"{'ip6' if ipv6 else 'ip'}:{table}:{line[1:].split()[0]}")
    return found


# --- mounts and cgroups ---------------------------------------------------------------------------------

def mounts_under(roots: Iterable[Path]) -> list[str]:
    """Mount points at or below any of `roots`, deepest first."""
    prefixes = [str(r).rstrip("/") for r in roots]
    found = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            if any(point == p or point.startswith(p + "/") for p in prefixes):
                found.append(point)
    return sorted(set(found), key=lambda p: p.count("/"), reverse=True)


def unmount_all(roots: Iterable[Path]) -> None:
    roots = list(roots)
    for _ in range(5):  # stacked mounts need several passes
        points = mounts_under(roots)
        if not points:
            return
        for point in points:
            run(["umount", "-l", point], check=False)


def cgroup_dirs(relative: str) -> list[Path]:
    """The cgroup directory `relative` in every v1 hierarchy (and the unified one, if mounted)."""
    base = Path("/sys/fs/cgroup")
    out = []
    for hierarchy in sorted(base.iterdir()) if base.is_dir() else []:
        candidate = hierarchy / relative.lstrip("/")
        if candidate.is_dir():
            out.append(candidate)
    return out


def create_cgroups(relative: str) -> None:
    """mkdir `relative` in every v1 hierarchy (the kubelet requires its cgroupRoot to exist); a new
    cpuset starts with no CPUs or memory nodes, so it gets its parent's."""
    base = Path("/sys/fs/cgroup")
    for hierarchy in sorted(base.iterdir()) if base.is_dir() else []:
        if not hierarchy.is_dir() or not (hierarchy / "cgroup.procs").exists():
            continue
        target = hierarchy / relative.lstrip("/")
        target.mkdir(parents=True, exist_ok=True)
        if hierarchy.name == "cpuset":
            for key in ("cpuset.cpus", "cpuset.mems"):
                with contextlib.suppress(OSError):
                    if not (target / key).read_text().strip():
                        (target / key).write_text((target.parent / key).read_text())


def cgroup_pids(relative: str) -> set[int]:
    pids: set[int] = set()
    for top in cgroup_dirs(relative):
        for procs in top.rglob("cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                pids |= {int(p) for p in procs.read_text().split()}
    return pids


def remove_cgroups(relative: str) -> None:
    """rmdir every cgroup below and at `relative`, deepest first (a cgroup with tasks stays)."""
    for top in cgroup_dirs(relative):
        dirs = sorted((d for d in top.rglob("*") if d.is_dir()), key=lambda d: len(d.parts), reverse=True)
        for d in [*dirs, top]:
            with contextlib.suppress(OSError):
                d.rmdir()


def listening_unix_sockets() -> set[str]:
    """Paths of unix sockets some process listens on (to tell a live shim socket from a stale one)."""
    out: set[str] = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
            parts = line.split()
            if len(parts) >= 8 and parts[5] == "01":  # state 01: listening
                out.add(parts[7])
    return out
