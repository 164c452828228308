"""One error hierarchy for envci, and the exit codes CI systems see.

Every error carries a message that names the object and a hint that says what to do next; the CLI
prints both and exits with the error's code, so a pipeline can tell a broken config from a flaky
cluster without parsing text.
"""

from __future__ import annotations

import enum
from typing import Any


class ExitCode(enum.IntEnum):
    """Stable process exit codes (documented in README.md)."""

    OK = 0
    TESTS_FAILED = 1
    BAD_INPUT = 2
    NOT_READY = 3
    INFRASTRUCTURE = 4
    SUPERSEDED = 5
    CANCELLED = 130


class EnvciError(Exception):
    """Base of every error envci raises on purpose."""

    exit_code: ExitCode = ExitCode.INFRASTRUCTURE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    diagnostics: str | None = None
    """Where the diagnostics bundle of this failure was written (its summary.md), when one was."""

    def add_diagnostics(self, path: str) -> None:
        """Name the bundle in the message itself, so every way the error is shown says where it is."""
        self.diagnostics = path
        self.message = f"{self.message}\n  diagnostics: {path}"
        self.args = (self.message,)

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class ConfigError(EnvciError):
    """The user's input (envci.yaml, flags, files it names) is wrong; nothing was changed."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        where = ""
        if file:
            where = f"{file}:{line}: " if line else f"{file}: "
        what = f"{field}: " if field else ""
        super().__init__(f"{where}{what}{message}", hint=hint)
        self.file = file
        self.line = line
        self.field = field
        self.detail = message


class ConfigErrors(ConfigError):
    """Several configuration problems reported at once, so a user fixes them in one pass.

    Raised only by checks that run before a stage changes anything (loading envci.yaml, rendering
    the manifest files), which is what lets the message say so."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        text = "\n".join(str(e) for e in errors)
        EnvciError.__init__(self, f"{len(errors)} problem(s) in the configuration; nothing was changed:\n{text}")
        self.file = errors[0].file if errors else None
        self.line = errors[0].line if errors else None
        self.field = errors[0].field if errors else None
        self.detail = text

    def __str__(self) -> str:
        return self.message


class BudgetExceededError(ConfigError):
    """A new environment would exceed a budget (envci.yaml's `budget:` or the cluster's policy).
    Nothing was changed; `budgets` lists each budget it would exceed with the environments that
    count against it, oldest first."""

    def __init__(
        self,
        message: str,
        *,
        budgets: list[dict[str, Any]],
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, file=file, line=line, field=field, hint=hint)
        self.budgets = budgets


class InfrastructureError(EnvciError):
    """The cluster, Helm, or another service failed; retrying later may succeed."""

    exit_code = ExitCode.INFRASTRUCTURE


class NotReadyError(EnvciError):
    """The environment did not become ready; `failures` says which workload and why."""

    exit_code = ExitCode.NOT_READY

    def __init__(self, message: str, *, failures: list[dict[str, Any]] | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.failures = failures or []


class TestsFailedError(EnvciError):
    """Tests ran and some failed: the environment worked, the code under test did not."""

    exit_code = ExitCode.TESTS_FAILED
    __test__ = False  # not a pytest class


class CancelledError(EnvciError):
    """The stage was interrupted by a signal; what exists is recorded for teardown."""

    exit_code = ExitCode.CANCELLED


class SupersededError(EnvciError):
    """A newer build of the same PR or branch owns the environment now; this build stands down."""

    exit_code = ExitCode.SUPERSEDED


class OwnershipError(EnvciError):
    """The environment's name points at something envci does not own (a namespace it did not
    create). Retrying cannot help, and nothing was changed: the name must change (`--env`,
    `namespace.prefix`), so it is bad input."""

    exit_code = ExitCode.BAD_INPUT


class PublishError(EnvciError):
    """A report could not be published (a PR/MR comment could not be listed, created or updated).

    Publishing never fails a build: the caller turns this into a warning. The message is safe
    to print (no token, response bodies cut and redacted)."""

    exit_code = ExitCode.INFRASTRUCTURE


class LockedError(EnvciError):
    """Another stage holds this environment's lease."""

    exit_code = ExitCode.INFRASTRUCTURE


class LeaseLostError(EnvciError):
    """This stage lost the environment's lease while it ran (renewals failed for longer than the
    lease lasts, or another stage took it over), so it stops before changing anything more."""

    exit_code = ExitCode.INFRASTRUCTURE
