"""`restore:` seed steps: load a PostgreSQL dump into a database of the environment.

The dump comes from one of three sources (docs/seed.md, "restore"):
- a file in the repository: plain SQL (gzipped or not) is read by envci itself; a pg_dump archive
  (custom, tar or directory format) is turned into SQL by `pg_restore` on the runner, which only
  converts and never connects anywhere;
- another envci environment, by name: envci port-forwards to that environment's database exactly as
  to its own, and `pg_dump` on the runner dumps it;
- a database whose URL is a secret in `secrets:`, dumped by `pg_dump`.

Either way envci runs the SQL itself, psql-style (`COPY ... FROM stdin` data streamed, the psql
commands pg_dump writes understood), so one transaction holds the whole restore and the record of
it: a restore that fails leaves nothing behind, and a retry starts clean. The destination is reached
as the `sql:` step reaches it (envci.seeders.sql.endpoint).

Run once: the record is a row in the seeded database's `envci_seed_history`, the table the `sql:`
step keeps, so the data and the record of it live and die together (a new database restores again).
A file is restored again when its content changes, as a changed SQL file runs again; a live source is
restored once per database, since its content changes all the time and a copy is taken to start from.
envci's own history table is left out of the dumps it takes: the copy's history is its own.

Live sources pass the allow-list rule (envci.sources) before anything is read: an environment's name
was checked when envci.yaml loaded, and again here; a URL's host, port and database are checked here,
once the secret is known, before anything connects to it.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from envci.config.model import RestoreSeed, RestoreSource
from envci.durations import parse_duration
from envci.errors import ConfigError, EnvciError, InfrastructureError, NotReadyError
from envci.identity import label_value
from envci.kube.portforward import forward_service
from envci.redact import redact, truncate
from envci.seeders.base import SeedContext, SeedError, StepResult
from envci.seeders.sql import CREATE_HISTORY, HISTORY_TABLE, connect, endpoint, error_text
from envci.seeders.sqltext import CopyIn, MetaCommand, ScriptError, ScriptItem, Statement, read_script
from envci.sources import allowed, env_source, pg_sources, refusal

DUMP_OPTIONS: tuple[str, ...] = (
    "--no-owner", "--no-privileges",  # the copy's roles are not the source's: objects belong to the restoring user
    "--no-publications", "--no-subscriptions",  # a subscription would connect the copy back to its source and keep pulling
    "--no-security-labels", "--no-tablespaces",  # neither exists in a fresh environment's database
)
"""What envci leaves out of every dump it takes or converts."""
PG_DUMP_OPTIONS: tuple[str, ...] = (
    "--format=plain", "--encoding=UTF8", "--no-password", f"--exclude-table=*.{HISTORY_TABLE}", *DUMP_OPTIONS,
)
PG_RESTORE_OPTIONS: tuple[str, ...] = ("--file=-", *DUMP_OPTIONS)
COPY_BATCH = 1 << 16
"""Bytes of COPY data sent to the server at a time."""
CONNECT_TIMEOUT = "10"
"""Seconds pg_dump waits for the source to answer, as envci's own connections do."""
TOOL_ERROR_CHARS = 800


# --- pure ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    kind: Literal["file", "environment", "url"]
    id: str
    """What the allow-list and the history know the source by: `file:PATH`, `env:NAME`, or the
    database's canonical `postgresql://HOST:PORT/DATABASE` (never a user or a password)."""


Action = Literal["restore", "again", "skip"]


def decide(source: Source, digest: str, done: set[tuple[str, str]]) -> Action:
    """Pure: what to do given the history rows (source id, checksum) of the destination database.

    A file restores again when its content changed ("again"); a live source restores once."""
    restored = {name for name, _ in done}
    if source.kind == "file":
        if (source.id, digest) in done:
            return "skip"
        return "again" if source.id in restored else "restore"
    return "skip" if source.id in restored else "restore"


DumpFormat = Literal["plain", "gzip", "archive"]


def dump_format(head: bytes, *, is_dir: bool = False) -> DumpFormat:
    """Pure: how a dump file is read, from its first 512 bytes. pg_dump's archives (custom: `PGDMP`,
    tar: `ustar` at 257, directory) need pg_restore; anything else is SQL, gzipped or not."""
    if is_dir or head.startswith(b"PGDMP") or head[257:262] == b"ustar":
        return "archive"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    return "plain"


def meta_refusal(command: str) -> str | None:
    """Pure: why a psql meta-command of a dump is refused; None for the ones that may be passed over.

    pg_dump brackets its output with `\\restrict KEY` and `\\unrestrict KEY`: psql's guard against
    meta-commands smuggled into a dump, which envci refuses anyway."""
    name = command.split()[0] if command.split() else command
    if name in ("\\restrict", "\\unrestrict"):
        return None
    if name in ("\\connect", "\\c"):
        return f"`{name}` switches to another database, and a restore goes into the step's database only"
    return f"the psql command `{name}` is not supported (only SQL and COPY data are)"


_SETTING = re.compile(r"SET\s+(SESSION\s+)?[A-Za-z_][A-Za-z_0-9.]*\s*(=|TO\b)", re.IGNORECASE)


def is_setting(st: Statement) -> bool:
    """`SET name = value`: pg_dump's preamble sets parameters an older server may not know
    (`transaction_timeout` since PostgreSQL 17), which psql shrugs off and envci passes over too."""
    return bool(_SETTING.match(st.text, st.code_start))


_COPY_CONTEXT = re.compile(r"\bCOPY \S+, line (\d+)")


def copy_line(context: str | None, first_row_line: int) -> int | None:
    """Pure: the script line of the COPY row PostgreSQL's error context names ("COPY t, line 3")."""
    m = _COPY_CONTEXT.search(context or "")
    return first_row_line + int(m.group(1)) - 1 if m else None


def hint_for(sqlstate: str | None, message: str) -> str:
    """Pure: what to do about a statement of a dump that failed (nothing of the restore was kept)."""
    kept = "nothing of the restore was kept (one transaction)"
    if HISTORY_TABLE in message:
        return f"{kept}; the dump holds envci's own history table: dump again with --exclude-table='*.{HISTORY_TABLE}'"
    if sqlstate in ("42P07", "42710", "42P06", "42723"):  # duplicate table, object, schema, function
        return (f"{kept}; the database already holds what the dump creates: restore into an empty database, "
                "or make the dump with --clean --if-exists (or --data-only)")
    if sqlstate == "42704" and "role" in message:
        return f"{kept}; the dump names roles this database lacks: make it with --no-owner --no-privileges"
    return kept


def summary_of(source: Source, database: str, counts: Counts | None) -> str:
    if counts is None:
        return f"{source.id} already restored into {database}"
    tables = f" in {counts.tables} table(s)" if counts.tables else ""
    return f"restored {source.id} into {database}: {counts.statements} statement(s), {counts.rows} row(s){tables}"


# --- finding the tools --------------------------------------------------------------------------


def pg_tool(name: str) -> str | None:
    """A PostgreSQL client program: on PATH, else the newest under /usr/lib/postgresql/*/bin
    (Debian installs several versions side by side, and pg_dump must be as new as the server)."""
    found = shutil.which(name)
    if found:
        return found

    def version(p: Path) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", p.parent.parent.name)) or (0,)

    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=version, reverse=True)
    return str(candidates[0]) if candidates else None


# --- running it ---------------------------------------------------------------------------------


@dataclass
class Counts:
    statements: int = 0
    rows: int = 0
    tables: int = 0
    settings_skipped: list[str] = field(default_factory=list)


def execute(conn: psycopg.Connection[Any], items: Iterable[ScriptItem], where: str, progress: Callable[[str], None]) -> Counts:
    """Run a script's items on `conn`, inside the caller's transaction.

    Raises SeedError naming `where`:line of the failing statement or COPY row."""
    counts = Counts()
    for item in items:
        if isinstance(item, MetaCommand):
            why = meta_refusal(item.text)
            if why:
                raise SeedError(f"{where}:{item.line}: {why}", kind="restore", hint="make the dump with pg_dump, without --create",
                                details={"line": item.line})
            continue
        st = item.statement if isinstance(item, CopyIn) else item
        try:
            if isinstance(item, CopyIn):
                counts.rows += _copy(conn, item)
                counts.tables += 1
            elif is_setting(item):
                try:
                    with conn.transaction():  # a savepoint: an unknown parameter must not end the restore
                        conn.execute(item.text.encode(), prepare=False)
                except psycopg.errors.UndefinedObject:
                    counts.settings_skipped.append(item.first_line)
                    progress(f"{where}:{item.line}: {item.first_line}: this server does not know the parameter; passed over")
                    continue
            else:
                conn.execute(item.text.encode(), prepare=False)  # bytes: no placeholder parsing
        except psycopg.Error as e:
            line = st.line_at(_position(e))
            if isinstance(item, CopyIn):
                line = copy_line(e.diag.context, item.first_row_line) or line
            raise SeedError(
                f"{where}:{line}: {error_text(e)}\n  statement: {truncate(redact(st.first_line), 200)}",
                kind="restore", hint=hint_for(e.diag.sqlstate, str(e)), details={"line": line},
            ) from None
        counts.statements += 1
    return counts


def _position(e: psycopg.Error) -> int | None:
    pos = e.diag.statement_position
    return int(pos) if pos and pos.isdigit() else None


def _copy(conn: psycopg.Connection[Any], item: CopyIn) -> int:
    with conn.cursor() as cur:
        with cur.copy(item.statement.text.encode()) as copy:
            batch: list[str] = []
            size = 0
            for row in item.rows:
                batch.append(row)
                size += len(row)
                if size >= COPY_BATCH:
                    copy.write("".join(batch))
                    batch, size = [], 0
            if batch:
                copy.write("".join(batch))
        return max(cur.rowcount, 0)


def history(conn: psycopg.Connection[Any]) -> tuple[sql.Composable, set[tuple[str, str]]]:
    """The history table, schema-qualified, and its rows. Qualified because a dump empties
    `search_path` for the rest of the session, and the record is written after the dump's SQL."""
    conn.execute(CREATE_HISTORY)
    row = conn.execute(
        "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = %s::regclass", (HISTORY_TABLE,)
    ).fetchone()
    assert row is not None  # it was created just now if it did not exist
    table = sql.Identifier(str(row[0]), HISTORY_TABLE)
    done = {(str(r[0]), str(r[1])) for r in conn.execute(sql.SQL("SELECT file, checksum FROM {}").format(table))}
    return table, done


class Tool:
    """pg_dump or pg_restore writing SQL to a pipe. stderr goes to a temporary file, so a chatty
    tool cannot fill a pipe nobody reads while envci reads stdout."""

    def __init__(self, argv: list[str], *, password: str | None, what: str) -> None:
        self.what = what
        self.program = os.path.basename(argv[0])
        # Only what the step says reaches the tool: a runner's PGHOST, PGDATABASE or PGPASSWORD
        # must not redirect or authenticate a dump. The password goes in the environment, never on
        # the command line, where any user of the machine could read it.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update({"PGCONNECT_TIMEOUT": CONNECT_TIMEOUT, "PGAPPNAME": "envci-seed"})
        if password:
            env["PGPASSWORD"] = password
        self._err: IO[bytes] = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._err, env=env,
                                          text=True, encoding="utf-8")
        except OSError as e:
            self._err.close()
            raise InfrastructureError(f"cannot run {self.program} for {what}: {e.strerror}") from None

    def lines(self) -> Iterator[str]:
        assert self._proc.stdout is not None
        yield from self._proc.stdout
        self.ended = True

    ended = False
    """True once the tool closed its output: it has exited, or is about to."""

    def stderr(self) -> str:
        self._err.seek(0)
        return truncate(redact(self._err.read().decode("utf-8", "replace").strip()), TOOL_ERROR_CHARS)

    def finish(self) -> None:
        """Raise when the tool failed: what it wrote may be cut short, so it must not be kept."""
        code = self._proc.wait()
        if code:
            raise ToolFailed(self.program, self.what, code, self.stderr())

    def kill(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()

    def close(self) -> None:
        self.kill()
        self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._err.close()


class ToolFailed(InfrastructureError):
    def __init__(self, program: str, what: str, code: int, stderr: str) -> None:
        super().__init__(f"{program} failed for {what} (exit code {code}): {stderr or 'no message'}")
        self.program = program
        self.stderr = stderr


@dataclass
class Dump:
    """The SQL of a source, as lines, and a check once they are read."""

    lines: Iterable[str]
    where: str
    """How error messages name the script: a file's path, or `the dump of SOURCE`."""
    finish: Callable[[], None] = lambda: None
    """Raises when the tool that wrote the lines failed: what it wrote may be cut short."""
    ended: Callable[[], bool] = lambda: True
    """True when all the lines were read: a tool's failure, if any, is known."""


def _hashing(lines: Iterable[str], digest: Any) -> Iterator[str]:
    for line in lines:
        digest.update(line.encode())
        yield line


def file_digest(path: Path) -> str:
    """sha256 of a dump file, or of a directory-format dump's files (names and contents)."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in files:
        if path.is_dir():
            h.update(p.relative_to(path).as_posix().encode() + b"\0")
        with p.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


class _Watchdog:
    """Ends a restore that outlives the step's `timeout`: kills the tool and cancels the statement."""

    def __init__(self, seconds: float, *actions: Callable[[], None]) -> None:
        self.fired = False
        self._actions = list(actions)
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def add(self, action: Callable[[], None]) -> None:
        self._actions.append(action)

    def _fire(self) -> None:
        self.fired = True
        for act in self._actions:
            with contextlib.suppress(Exception):
                act()

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


# --- the step -----------------------------------------------------------------------------------


def source_of(step: RestoreSeed) -> Source:
    """The step's source as far as envci.yaml tells it (a URL's database is known only at run time)."""
    src = step.source
    if src.file:
        return Source("file", f"file:{src.file}")
    if src.environment:
        return Source("environment", env_source(src.environment))
    return Source("url", f"url_secret:{src.url_secret}")


def run(step: RestoreSeed, ctx: SeedContext) -> StepResult:
    src = step.source
    source = source_of(step)
    opener: Callable[[_Watchdog], contextlib.AbstractContextManager[Dump]]
    digest = ""
    if src.file:
        path = ctx.path(src.file)
        field_path: tuple[str, ...] = ("restore",) if isinstance(step.restore, str) else ("restore", "file")
        fmt = _format_of(path, src.file, ctx, field_path)
        restore_tool = pg_tool("pg_restore") if fmt == "archive" else None
        if fmt == "archive" and restore_tool is None:
            raise ctx.config_error(
                f"{src.file} is a pg_dump archive, and reading one needs pg_restore, which is not installed here", *field_path,
                hint="install the PostgreSQL client programs on the runner (Debian: postgresql-client), or dump with --format=plain",
            )
        digest = file_digest(path)
        opener = functools.partial(_file_dump, path, src.file, fmt, restore_tool)
    elif src.environment:
        opener = _environment_source(step, src, ctx, source)
    else:
        source, opener = _url_source(step, src, ctx)

    database = step.database if not step.url else "the database at `url`"
    timeout = parse_duration(step.timeout).total_seconds()
    with endpoint(step, ctx) as kw:
        what = f"database {step.database} as {step.user}" if not step.url else "the database at `url`"
        with connect(kw, what=what) as conn:
            table, done = history(conn)
            action = decide(source, digest, done)
            if action == "skip":
                ctx.progress(f"{source.id}: already restored into {database}; skipped")
                return StepResult("restore", summary_of(source, database, None), changed=False,
                                  details={"source": source.id, "database": database, "restored": False})
            if action == "again":
                ctx.progress(f"{source.id}: changed since it was restored; restoring the new content")
            with _Watchdog(timeout, conn.cancel_safe) as dog:
                try:
                    counts, digest = _restore(conn, opener, dog, table, source, digest, ctx)
                except (EnvciError, psycopg.Error) as e:
                    if dog.fired:
                        raise SeedError(f"the restore of {source.id} did not finish within {step.timeout}; nothing of it was kept",
                                        kind="restore", hint="raise the step's `timeout`, or restore a smaller dump") from None
                    if isinstance(e, psycopg.OperationalError):
                        raise InfrastructureError(f"lost the connection to {what} during the restore: {truncate(redact(str(e)), 300)}",
                                                  hint="nothing of the restore was kept; run `envci seed` again") from None
                    if isinstance(e, psycopg.Error):  # at the end: a deferred constraint, the history row
                        raise SeedError(f"the restore of {source.id} failed as it ended: {error_text(e)}", kind="restore",
                                        hint=hint_for(e.diag.sqlstate, str(e))) from None
                    raise
    ctx.progress(summary_of(source, database, counts))
    details: dict[str, Any] = {
        "source": source.id, "database": database, "restored": True, "statements": counts.statements, "rows": counts.rows,
        "tables": counts.tables, "checksum": digest,
    }
    if counts.settings_skipped:
        details["settings_skipped"] = counts.settings_skipped
    return StepResult("restore", summary_of(source, database, counts), details=details)


def _restore(
    conn: psycopg.Connection[Any], opener: Callable[[_Watchdog], contextlib.AbstractContextManager[Dump]], dog: _Watchdog,
    table: sql.Composable, source: Source, digest: str, ctx: SeedContext,
) -> tuple[Counts, str]:
    """The restore and its history row, in one transaction; the checksum recorded for a live source
    is that of the SQL it sent."""
    with opener(dog) as dump:
        live = hashlib.sha256() if not digest else None
        lines = _hashing(dump.lines, live) if live is not None else dump.lines
        with conn.transaction():
            try:
                try:
                    counts = execute(conn, read_script(lines), dump.where, ctx.progress)
                except ScriptError as e:
                    raise SeedError(f"{dump.where}:{e.line}: {e}", kind="restore", hint="nothing of the restore was kept (one transaction)",
                                    details={"line": e.line}) from None
                except UnicodeDecodeError:
                    raise SeedError(f"{dump.where} is not UTF-8 text", kind="restore",
                                    hint="make the dump with --encoding=UTF8; nothing of the restore was kept") from None
            except SeedError:
                if dump.ended():
                    dump.finish()  # a tool that failed cut the script short: its error is the cause, not the SQL's
                raise
            dump.finish()
            recorded = live.hexdigest() if live is not None else digest
            conn.execute(sql.SQL("INSERT INTO {} (file, checksum) VALUES (%s, %s) ON CONFLICT DO NOTHING").format(table),
                         (source.id, recorded))
    return counts, recorded


def _format_of(path: Path, rel: str, ctx: SeedContext, field_path: tuple[str, ...]) -> DumpFormat:
    try:
        if path.is_dir():
            if not (path / "toc.dat").is_file():
                raise ctx.config_error(f"{rel} is a folder without toc.dat, so not a directory-format dump", *field_path,
                                       hint="name a dump file, or a folder pg_dump --format=directory wrote")
            return "archive"
        with path.open("rb") as f:
            return dump_format(f.read(512))
    except OSError as e:
        raise ctx.config_error(f"cannot read the dump {rel!r}: {e.strerror}", *field_path) from None


@contextlib.contextmanager
def _file_dump(path: Path, rel: str, fmt: DumpFormat, restore_tool: str | None, dog: _Watchdog) -> Iterator[Dump]:
    if fmt == "archive":
        assert restore_tool is not None
        tool = Tool([restore_tool, *PG_RESTORE_OPTIONS, str(path)], password=None, what=rel)
        dog.add(tool.kill)
        try:
            yield Dump(tool.lines(), rel, lambda: _finish_conversion(tool, rel), lambda: tool.ended)
        finally:
            tool.close()
        return
    opened: IO[str] = gzip.open(path, "rt", encoding="utf-8") if fmt == "gzip" else path.open(encoding="utf-8")
    with opened:
        yield Dump(opened, rel)


def _finish_conversion(tool: Tool, rel: str) -> None:
    try:
        tool.finish()
    except ToolFailed as e:
        raise ConfigError(f"pg_restore could not read the dump {rel}: {e.stderr}",
                          hint="a dump is readable by a pg_restore at least as new as the pg_dump that made it") from None


def _environment_source(
    step: RestoreSeed, src: RestoreSource, ctx: SeedContext, source: Source,
) -> Callable[[_Watchdog], contextlib.AbstractContextManager[Dump]]:
    name = src.environment or ""
    if not allowed(source.id, step.allow):  # checked when envci.yaml loaded; a defence against a spec built otherwise
        message, hint = refusal(source.id, step.allow, ctx.where("allow")[2])
        raise ctx.config_error(message, "allow", hint=hint)
    if name == ctx.env_name:
        raise ctx.config_error(f"environment {name} is the one being seeded: a restore cannot copy a database into itself",
                               "restore", "environment", hint="name the environment to copy from, e.g. shop-main")
    found = ctx.kube.namespaces(f"envci.io/managed=true,envci.io/env={label_value(name)}")
    if not found:
        raise NotReadyError(f"environment {name}, to restore from, does not exist",
                            hint="provision it first, or check its name with `envci list`")
    namespace = str(found[0]["metadata"]["name"])
    service = _source_service(step, src, ctx)
    port = src.port or step.port
    database, user = src.database or step.database, src.user or step.user
    if src.password:
        password: str | None = ctx.secret(src.password, "restore", "password")
    else:
        password = ctx.secret(step.password, "password") if step.password else None
    tool = pg_tool("pg_dump")
    if tool is None:
        raise ctx.config_error("restoring from an environment needs pg_dump, which is not installed here", "restore",
                               hint="install the PostgreSQL client programs on the runner (Debian: postgresql-client)")

    @contextlib.contextmanager
    def open_dump(dog: _Watchdog) -> Iterator[Dump]:
        with forward_service(ctx.kube, namespace, service, port) as pf:
            ctx.progress(f"port-forward 127.0.0.1:{pf.local_port} -> {namespace}/{pf.pod}:{pf.port} (service {service} of environment {name})")
            argv = [tool, *PG_DUMP_OPTIONS, f"--host={pf.host}", f"--port={pf.local_port}", f"--username={user}", f"--dbname={database}"]
            yield from _dump_with(argv, password, source, dog)

    return open_dump


def _dump_with(argv: list[str], password: str | None, source: Source, dog: _Watchdog) -> Iterator[Dump]:
    tool = Tool(argv, password=password, what=source.id)
    dog.add(tool.kill)
    try:
        yield Dump(tool.lines(), f"the dump of {source.id}", lambda: _finish_dump(tool, source), lambda: tool.ended)
    finally:
        tool.close()


def _finish_dump(tool: Tool, source: Source) -> None:
    try:
        tool.finish()
    except ToolFailed as e:
        if "server version mismatch" in e.stderr:
            raise ConfigError(f"pg_dump here is older than the server of {source.id}: {e.stderr}",
                              hint="install the PostgreSQL client programs of the server's version (or newer) on the runner") from None
        raise InfrastructureError(f"pg_dump of {source.id} failed: {e.stderr}",
                                  hint="check that the source database is up and that the user and password are right; "
                                  "nothing of the restore was kept") from None


def _source_service(step: RestoreSeed, src: RestoreSource, ctx: SeedContext) -> str:
    """The other environment's Service: `restore.service`, else its `restore.component`'s, else the
    step's own. A component this envci.yaml defines (the same app) is exposed the same way there."""
    if src.service:
        return src.service
    if not src.component and step.service:
        return step.service
    name = src.component or step.component or ""
    try:
        comp = ctx.cfg.spec.component(name)
    except KeyError:
        return name
    return (comp.expose.service if comp.expose and comp.expose.service else None) or comp.name


def _url_source(
    step: RestoreSeed, src: RestoreSource, ctx: SeedContext,
) -> tuple[Source, Callable[[_Watchdog], contextlib.AbstractContextManager[Dump]]]:
    url = ctx.secret(src.url_secret or "", "restore", "url_secret")
    try:
        params = {k: str(v) for k, v in conninfo_to_dict(url).items()}
    except psycopg.ProgrammingError:
        # The parser's message quotes the text, which is a secret: say what is wrong without it.
        raise ctx.config_error(f"the secret {src.url_secret} does not hold a PostgreSQL URL", "restore", "url_secret",
                               hint="e.g. postgresql://user@host:5432/database (the password may be in it, or in `restore.password`)") from None
    try:
        ids = pg_sources(params)
    except ValueError as e:
        raise ctx.config_error(f"the URL in the secret {src.url_secret} {str(e).removeprefix('the URL ')}", "restore", "url_secret") from None
    field_name = ctx.where("allow")[2]
    for one in ids:
        if not allowed(one, step.allow):
            message, hint = refusal(one, step.allow, field_name)
            raise ctx.config_error(f"{message}; it is where the secret {src.url_secret} points", "allow", hint=hint)
    source = Source("url", ", ".join(ids))
    password = ctx.secret(src.password, "restore", "password") if src.password else params.get("password")
    params = {k: v for k, v in params.items() if "password" not in k}  # passwords go in the environment, not on the command line
    tool = pg_tool("pg_dump")
    if tool is None:
        raise ctx.config_error("restoring from a database URL needs pg_dump, which is not installed here", "restore",
                               hint="install the PostgreSQL client programs on the runner (Debian: postgresql-client)")
    argv = [tool, *PG_DUMP_OPTIONS, f"--dbname={make_conninfo(**params)}"]

    @contextlib.contextmanager
    def open_dump(dog: _Watchdog) -> Iterator[Dump]:
        yield from _dump_with(argv, password, source, dog)

    return source, open_dump
