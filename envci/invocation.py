"""What every command shares: its flags, the reporter, and the one way each reads envci.yaml,
connects to the cluster, finds its report folder and writes diagnostics when it fails.

A command handler receives an `Invocation` and returns a `Result` (or an exit code when it
prints its own output), so no handler reads a shared flag differently from another.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envci.errors import EnvciError, ExitCode
from envci.output import Reporter

if TYPE_CHECKING:
    from envci.config.loader import LoadedConfig
    from envci.kube.client import Kube
    from envci.locate import Located
    from envci.report.model import RunResult


@dataclass(frozen=True)
class Result:
    """A command's one result: the reporter prints `data` for `--output json`, `text` otherwise."""

    data: dict[str, Any]
    text: str
    code: int = ExitCode.OK


class Invocation:
    def __init__(self, args: argparse.Namespace, rep: Reporter) -> None:
        self.args = args
        self.rep = rep
        self._kube: Kube | None = None

    @property
    def command(self) -> str:
        return str(self.args.command)

    def kube(self) -> Kube:
        """Connected on first use and then shared, so a command refused for its flags or its
        envci.yaml never reads the kubeconfig."""
        if self._kube is None:
            from envci.kube.client import connect

            self._kube = connect(self.args.kubeconfig)
        return self._kube

    def config(self, *, secrets: bool = True, check_files: bool = True) -> LoadedConfig:
        """envci.yaml with --env and --set applied. Commands that only read the environment pass
        `secrets=False`: they must work where a secret's variable is not set."""
        from envci.ci import detect_context
        from envci.config.loader import env_secret_resolver, load_config, placeholder_resolver
        from envci.config.overrides import combine, from_environment, load_values_file, parse_assignments, values_files_from_environment

        a = self.args
        ctx = detect_context(os.environ)
        resolver = env_secret_resolver(os.environ, self._cluster_secret) if secrets else placeholder_resolver
        assignments = parse_assignments(a.set_values if a.set_values is not None else from_environment(os.environ))
        files = a.values_files if a.values_files is not None else values_files_from_environment(os.environ)
        overrides = combine([load_values_file(f) for f in files], assignments)
        return load_config(a.config, ctx, env_override=a.env, resolve_secret=resolver, check_files=check_files, overrides=overrides)

    def _cluster_secret(self, name: str, ref: Any) -> str:
        from envci.kube.secrets import read_secret_key

        return read_secret_key(self.kube(), name, ref)

    def mask_secrets(self, cfg: LoadedConfig, warn: Callable[[str], None] | None = None) -> None:
        """Register the values of envci.yaml's secrets with the redactor where they can be read.

        Commands that only read (wait-ready, logs) load envci.yaml without resolving secrets, yet print
        or write what pods log, which may include one. A secret that cannot be read (a variable not
        set on a person's machine) must not stop them: it is skipped, with a warning when `warn` is given."""
        from envci.config.loader import env_secret_resolver
        from envci.redact import register

        resolve = env_secret_resolver(os.environ, self._cluster_secret)
        for name, ref in cfg.spec.secrets.items():
            try:
                register(resolve(name, ref))
            except EnvciError as e:
                if warn:
                    warn(f"secret {name!r} could not be read ({e.message.splitlines()[0]}); its value is not masked in what is printed")

    def report_dir(self) -> Path:
        from envci.ci.outputs import report_dir

        return Path(self.args.output_dir) if self.args.output_dir else report_dir(os.environ)

    def diagnosed(self, cfg: LoadedConfig) -> AbstractContextManager[None]:
        """Around a stage: a failure writes the diagnostics bundle into the report folder and names it in the error."""
        from envci.stages.diagnose import Target, on_failure

        return on_failure(self.kube(), self.rep, Target.of(cfg, self.command, kubeconfig=self.args.kubeconfig), self.report_dir())

    def diagnose_tests(self, cfg: LoadedConfig, run: RunResult) -> str | None:
        """Tests that did not pass are a failure of the test stage: the bundle shows the environment they ran against."""
        if run.outcome == "passed":
            return None
        from envci.report.diagnostics import tests_not_passed
        from envci.stages.diagnose import Target, collect, summary_path

        target = Target.of(cfg, "test", kubeconfig=self.args.kubeconfig)
        path = collect(self.kube(), self.rep, target, self.report_dir(), error=tests_not_passed(run))
        return summary_path(path) if path else None

    def locate(self) -> Located:
        from envci.locate import locate

        return locate(
            config=self.args.config, env_name=self.args.env, load=lambda: self.config(secrets=False, check_files=False),
            kube=self.kube, progress=self.rep.progress,
        )


Handler = Callable[[Invocation], "Result | int"]
"""One command: a Result for the reporter to print, or an exit code when the command printed itself."""
