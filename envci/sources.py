"""Where a seed step may copy data from: the allow-list rule of `restore:` and `s3:` with `copy_from:`.

A step that copies from a live source (another environment's database, a database whose URL is a
secret, a bucket) must list what it may read in its own `allow:`, written out literally in
envci.yaml. A source that no entry covers is refused with exit 2 before anything is read. The list
cannot be templated, so a value, a `--set`, a CI variable or a secret that resolves to a production
database or bucket cannot make a build copy from it unnoticed: widening the list is a reviewed
change to envci.yaml, and the refusal names the source to add.

Sources are compared by a canonical text that says where the data lives and holds nothing secret:
`env:NAME`, `postgresql://HOST:PORT/DATABASE` (never a user or a password) and `s3://BUCKET/PREFIX`.
In an entry `*` matches any text and nothing else is special; an entry also covers what lies below
it after a `/` (`s3://golden` covers `s3://golden/v1`, `postgresql://db:5432` every database there).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

DEFAULT_PG_PORT = 5432
ENV = "env:"
PG = "postgresql://"
S3 = "s3://"
_PG_ALIASES = ("postgresql://", "postgres://")


def env_source(name: str) -> str:
    return f"{ENV}{name}"


def s3_source(bucket: str, prefix: str) -> str:
    prefix = prefix.strip("/")
    return f"{S3}{bucket}/{prefix}" if prefix else f"{S3}{bucket}"


def pg_sources(params: Mapping[str, str]) -> list[str]:
    """The canonical sources of libpq connection parameters (as psycopg's `conninfo_to_dict` gives
    them): one per host, since libpq may connect to any host of a list.

    Raises ValueError when no host is named: a socket on the runner is not a source anyone can
    put on a list with meaning."""
    hosts = [h.strip().lower() for h in (params.get("host") or params.get("hostaddr") or "").split(",")]
    if not any(hosts) or any(h.startswith("/") for h in hosts):
        raise ValueError("the URL names no host (a Unix socket is not supported as a source)")
    ports = [p.strip() for p in str(params.get("port") or "").split(",")]
    if len(ports) == 1:
        ports = ports * len(hosts)  # libpq: one port for every host
    database = params.get("dbname") or params.get("user") or ""  # libpq's default database is the user's name
    return [f"{PG}{h}:{p or DEFAULT_PG_PORT}/{database}" for h, p in zip(hosts, ports, strict=False)]


def entry_problem(entry: str, schemes: Iterable[str]) -> str | None:
    """Why `entry` cannot stand in an allow-list of a step that copies from `schemes`, or None."""
    wanted = tuple(schemes)
    text = entry.strip()
    if not text:
        return "is empty"
    if "{{" in text or "{%" in text:
        return "is a template; write the source out literally, so the list means the same in every build"
    low = text.lower()
    pg_alias = next((a for a in _PG_ALIASES if low.startswith(a)), None)
    scheme = PG if pg_alias else next((s for s in (ENV, S3) if low.startswith(s)), None)
    if scheme is None or scheme not in wanted:
        return "is not a source this step reads; use " + " or ".join(_FORMS[s] for s in wanted)
    rest = text[len(pg_alias or scheme):]
    if not rest.strip("/"):
        return "names no " + {ENV: "environment", PG: "host", S3: "bucket"}[scheme]
    if scheme == PG and ("@" in rest or "?" in rest):
        return "holds a user, a password or options; name only the host, the port and the database"
    return None


_FORMS = {ENV: "env:NAME", PG: "postgresql://HOST[:PORT][/DATABASE]", S3: "s3://BUCKET[/PREFIX]"}


def normalize(entry: str) -> str:
    """An entry in the canonical form of the sources it is compared with."""
    text = entry.strip().rstrip("/")
    low = text.lower()
    for alias in _PG_ALIASES:
        if low.startswith(alias):
            rest = text[len(alias):]
            where, slash, database = rest.partition("/")
            host, colon, port = where.rpartition(":") if ":" in where else (where, "", "")
            return f"{PG}{host.lower()}:{port if colon else DEFAULT_PG_PORT}{slash}{database}"
    return text


def _pattern(entry: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if part == "*" else re.escape(part) for part in re.split(r"(\*)", entry)))


def covers(entry: str, source: str) -> bool:
    """True when the allow-list entry admits `source` (itself, by `*`, or as something below it)."""
    norm = normalize(entry)
    return bool(_pattern(norm).fullmatch(source) or _pattern(norm + "/*").fullmatch(source))


def allowed(source: str, allow: Iterable[str]) -> bool:
    return any(covers(entry, source) for entry in allow)


def refusal(source: str, allow: list[str], field: str) -> tuple[str, str]:
    """(message, hint) of a source no entry covers: both name the source, the hint names the field."""
    listed = ", ".join(allow) if allow else "none"
    return (
        f"copying from {source} is not allowed: no entry of `allow` covers it (allowed: {listed})",
        f'add "{source}" to {field} if this step is meant to copy from it; keep production sources off the list',
    )
