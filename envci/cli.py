"""Command-line interface: the parser, the flags every command shares, and exit codes and errors.

What each command does is a handler in envci/commands.py, found by the command's name in
`HANDLERS`; this module imports it only once a command runs, so `envci --help` stays fast.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from envci import __version__
from envci.errors import BudgetExceededError, CancelledError, ConfigError, ConfigErrors, EnvciError, ExitCode, NotReadyError
from envci.output import Reporter

EXIT_CODES_HELP = """exit codes:
  0  success
  1  tests failed (the environment worked; the code under test did not)
  2  bad input: envci.yaml, a file it names, a flag, a name envci does not own, or a budget
     with no room for a new environment (nothing was changed)
  3  the environment did not become ready, or a seed step failed
  4  infrastructure error: the cluster, Helm or another service failed
  5  superseded: a newer build of the same PR/branch owns the environment
  130  cancelled by a signal (what exists is recorded for teardown)
"""


def _common(p: argparse.ArgumentParser, *, config: bool = True) -> None:
    if config:
        p.add_argument("-c", "--config", default=os.environ.get("ENVCI_CONFIG", "envci.yaml"), help="path to envci.yaml (default: %(default)s, or $ENVCI_CONFIG)")
        p.add_argument("--env", default=os.environ.get("ENVCI_ENV") or None, help="environment name, overriding the one derived from the CI context")
        p.add_argument("--set", dest="set_values", action="append", default=None, metavar="NAME=VALUE",
                       help="override `values.NAME` of envci.yaml, or with a component's name first (api.image.tag=v2) that "
                       "component's Helm values (repeatable; default: $ENVCI_SET, space-separated)")
        p.add_argument("--values", dest="values_files", action="append", default=None, metavar="FILE",
                       help="a YAML file of overrides: component names (their Helm values) and `values:`; applied in order, "
                       "then --set (repeatable; default: $ENVCI_VALUES, space-separated)")
    p.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
    p.add_argument("-o", "--output", choices=("text", "json"), default="text", help="result format on stdout (progress always goes to stderr)")


REPORT_DIR_DEFAULT = "(default: $ENVCI_REPORT_DIR, else envci-report/ at the root of the CI checkout, or here outside CI)"


LOGS_HELP = """examples:
  envci logs                      every pod of the build's environment
  envci logs web -f --since 10m   component web, following new pods and restarts
  envci logs --env shop-pr-42 db --previous --tail 50
  envci logs -o json              one JSON object per line: namespace, component, pod, container,
                                  previous, time, message
A COMPONENT the environment does not have is bad input (exit 2; the message names those it has);
an environment that does not exist exits 3.

"""


def _diagnostics_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output-dir", default=None,
                   help=f"report folder; when the stage fails, diagnostics/ is written there (events, objects, logs, summary.md) {REPORT_DIR_DEFAULT}")


DURATION = "DURATION"
"""Metavar of every flag that takes a duration; `read_durations` converts exactly these."""


def _duration_flag(p: argparse.ArgumentParser, flag: str, **kw: Any) -> None:
    p.add_argument(flag, metavar=DURATION, **kw)


def duration_flags(p: argparse.ArgumentParser) -> dict[str, str]:
    """dest -> flag of the parser's duration flags (found by metavar, so none can be missed)."""
    return {a.dest: a.option_strings[-1] for a in p._actions if a.metavar == DURATION and a.option_strings}


def read_durations(args: argparse.Namespace) -> None:
    """Turn every duration flag's text into a timedelta, or refuse it as bad input (exit 2).

    Done before any command runs, so a typo such as `--timeout 5x` changes nothing anywhere."""
    from envci.durations import parse_duration

    for dest, flag in duration_flags(args.command_parser).items():
        raw = getattr(args, dest, None)
        if raw is None:
            continue
        try:
            setattr(args, dest, parse_duration(raw))
        except ValueError as e:
            raise ConfigError(str(e), field=flag, hint=f"give {flag} a duration such as 90s, 30m, 4h or 2h30m") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="envci",
        description="An isolated, production-like Kubernetes environment for every CI build.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"envci {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_: str, *, config: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_, epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
        _common(p, config=config)
        p.set_defaults(command_parser=p)  # read_durations finds the command's own flags through it
        return p

    add("validate", "check envci.yaml without touching the cluster")
    p = add("schema", "print the JSON Schema of envci.yaml", config=False)
    p.add_argument("--format", choices=("json", "markdown"), default="json", help="JSON Schema, or the Markdown reference")
    p = add("provision", "create or update the build's environment and install its components")
    p.add_argument("--no-wait-dependencies", action="store_true", help="do not wait for dependencies to be ready before installing dependents")
    p.add_argument("--wait", action="store_true",
                   help="then wait until every workload is ready, as `envci wait-ready` does (one command, one start-up; exit 3 when not ready)")
    _duration_flag(p, "--timeout", default=None, help="with --wait: overall deadline of the wait, e.g. 5m (default: each component's wait.timeout)")
    _diagnostics_flag(p)
    p = add("wait-ready", "wait until every workload of the environment is ready")
    _duration_flag(p, "--timeout", default=None, help="overall deadline, e.g. 5m (default: each component's wait.timeout)")
    p.add_argument("--component", action="append", default=None, help="wait only for this component (repeatable)")
    _diagnostics_flag(p)
    p = add("seed", "load data into the environment: the `seed:` steps of envci.yaml, in order (safe to re-run)")
    p.add_argument("--step", type=int, action="append", default=None, help="run only the step with this index (0-based; repeatable)")
    _diagnostics_flag(p)
    p = add("test", "run the test suites of envci.yaml against the environment and write a report")
    p.add_argument("--output-dir", default=None, help=f"report folder: junit.xml, summary.md, report.json, test.env, logs/ {REPORT_DIR_DEFAULT}")
    p.add_argument("--suite", action="append", default=None, help="run only this suite (repeatable)")
    p.add_argument("--no-publish", action="store_true", help="write the report files only: no step summary, no PR/MR comment")
    p.add_argument("--no-comment", action="store_true", help="publish the step summary but post no PR/MR comment")
    p = add("report", "publish a report written by `envci test` again (step summary, PR/MR comment)", config=False)
    p.add_argument("--output-dir", default=None, help=f"report folder written by `envci test` {REPORT_DIR_DEFAULT}")
    p.add_argument("--no-comment", action="store_true", help="publish the step summary but post no PR/MR comment")
    p = add("teardown", "remove the environment and everything it created (idempotent)")
    _duration_flag(p, "--timeout", default="5m", help="how long to wait for the namespace to go (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="remove finalizers from envci-owned objects if the namespace is stuck")
    _duration_flag(p, "--deadline", default=None,
                   help="finish within this time, e.g. 2m, as a cancelled CI job must inside its grace period: every deletion starts "
                   "at once, and a namespace still terminating then is left to Kubernetes (exit 0; `gone` is false)")
    p = add("status", "show one environment: components, readiness, URLs, expiry")
    p = add("list", "list all environments envci manages", config=False)
    p.add_argument("--app", default=None, help="only this application's environments")
    p = add("up", "the whole pipeline: provision, wait-ready, seed, test, then teardown (also on failure and cancellation)")
    p.add_argument("--keep", action="store_true", help="leave the environment in place at the end (the janitor reaps it after its TTL)")
    p.add_argument("--keep-on-failure", action="store_true",
                   help="leave the environment in place when a stage fails or tests fail, for a person to inspect "
                   "(diagnostics/summary.md says how; the janitor reaps it after its TTL); tear it down after success")
    p.add_argument("--output-dir", default=None, help=f"test report folder {REPORT_DIR_DEFAULT}")
    p.add_argument("--no-publish", action="store_true", help="write the report files only: no step summary, no PR/MR comment")
    p = add("reap", "tear down every expired environment (the janitor)", config=False)
    p.add_argument("--dry-run", action="store_true", help="list what would be reaped; change nothing")
    p.add_argument("--app", default=None, help="only this application's environments")
    p.add_argument("--closed-prs", action="store_true", help="also reap environments whose PR/MR is closed (needs ENVCI_GITHUB_TOKEN or ENVCI_GITLAB_TOKEN)")
    _duration_flag(p, "--suspend-after", default=None,
                   help="also suspend (not delete) every environment that has not expired and that no stage has used for this long, "
                   "e.g. 2h: idle since its envci.io/last-activity (written by provision, seed, test, resume and extend)")
    p = add("suspend", "scale the environment's workloads to zero, keeping its volumes and data; `envci resume` brings it back (idempotent)")
    p = add("resume", "bring a suspended environment back as it was, then wait until it is ready (idempotent)")
    _duration_flag(p, "--timeout", default=None,
                   help="how long to wait for readiness, e.g. 5m (default: each component's wait.timeout; 5m without envci.yaml)")
    p.add_argument("--no-wait", action="store_true", help="restore the workloads and return; do not wait for readiness")
    _diagnostics_flag(p)
    p = add(
        "logs",
        "print the logs of an environment's pods, each line prefixed with [pod/NAME/CONTAINER]: one component's, or every pod's",
    )
    p.add_argument("component", nargs="?", default=None, metavar="COMPONENT", help="a component of envci.yaml (default: every pod of the environment)")
    p.add_argument("-f", "--follow", action="store_true",
                   help="keep printing as pods write, also from pods created and containers restarted meanwhile (stop with Ctrl-C)")
    _duration_flag(p, "--since", default=None, help="only lines newer than this, e.g. 10m (default: all)")
    p.add_argument("-p", "--previous", action="store_true", help="the instance of each container before its last restart (the one that crashed)")
    p.add_argument("--tail", type=int, default=None, metavar="N", help="the last N lines of each container (default: all)")
    p.epilog = LOGS_HELP + EXIT_CODES_HELP
    p = add("extend", "push an environment's expiry")
    _duration_flag(p, "--ttl", required=True, help="new lifetime from now, e.g. 2h")
    p = add("cluster", "the embedded local cluster: up | down | status | kubeconfig | load-image ARCHIVE...", config=False)
    p.add_argument("action", choices=("up", "down", "status", "kubeconfig", "load-image"))
    p.add_argument("archives", nargs="*", metavar="ARCHIVE", help="load-image: image archives to import into the node (docker save or OCI layout)")
    p.add_argument(
        "--nodes", choices=("real", "simulated"), default="real",
        help="real: one real node, containers run (cluster `envci`); simulated: kwok nodes, nothing runs "
        "(cluster `envci-sim`, for scale tests and charts whose images cannot be pulled); both can run at once",
    )
    return parser


def run(args: argparse.Namespace, rep: Reporter) -> int:
    """The flags every command shares are applied here, once; then the command's handler runs and
    its result is printed the one way `--output` asks for."""
    from envci.commands import HANDLERS
    from envci.invocation import Invocation, Result

    read_durations(args)
    if args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig  # Helm, secret lookups and test suites read $KUBECONFIG: the same cluster
    out = HANDLERS[args.command](Invocation(args, rep))
    if isinstance(out, Result):
        rep.result(out.data, out.text)
        return int(out.code)
    return int(out)


def _on_sigterm(signum: int, frame: Any) -> None:
    raise CancelledError(f"stopped by signal {signum}", hint="run `envci teardown` (or let the janitor) remove what exists")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    rep = Reporter(args.output)
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return int(run(args, rep))
    except KeyboardInterrupt:
        print("envci: cancelled", file=sys.stderr)
        return ExitCode.CANCELLED
    except EnvciError as e:
        return report_error(args.command, e, rep)
    except Exception as e:  # noqa: BLE001 - an unexpected failure is still an infrastructure error to CI
        where = keep_traceback()
        rep.error(f"envci {args.command}: internal error: {e} (please report this, with {where})")
        return ExitCode.INFRASTRUCTURE


def keep_traceback() -> str:
    """The traceback of the exception being handled, redacted, in a private file (on stderr too with
    `ENVCI_DEBUG=traceback`): a user reads one line, a bug report gets the whole story."""
    import tempfile
    import traceback

    from envci.redact import redact

    text = redact(traceback.format_exc())
    if "traceback" in (os.environ.get("ENVCI_DEBUG") or "").split(","):
        print(text, file=sys.stderr)
    try:
        fd, path = tempfile.mkstemp(prefix="envci-internal-error-", suffix=".txt")  # mode 0600
        with os.fdopen(fd, "w") as f:
            f.write(text)
    except OSError:
        return "ENVCI_DEBUG=traceback set to see where it happened"
    return f"the details in {path}"


def error_payload(e: EnvciError) -> dict[str, Any]:
    """The JSON form of an error, for `--output json` (Reporter.result redacts it)."""
    payload: dict[str, Any] = {"error": e.message, "hint": e.hint, "exit_code": int(e.exit_code), "type": type(e).__name__}
    if isinstance(e, ConfigErrors):
        payload["errors"] = [{"file": x.file, "line": x.line, "field": x.field, "message": x.detail, "hint": x.hint} for x in e.errors]
    elif isinstance(e, ConfigError):  # one problem: same shape, so CI wrappers can annotate file and line
        payload["errors"] = [{"file": e.file, "line": e.line, "field": e.field, "message": e.detail, "hint": e.hint}]
    if isinstance(e, NotReadyError):
        payload["failures"] = e.failures
    if isinstance(e, BudgetExceededError):
        payload["budgets"] = e.budgets
    if e.diagnostics:
        payload["diagnostics"] = e.diagnostics
    return payload


def report_error(command: str, e: EnvciError, rep: Reporter) -> int:
    """Print the error (JSON on stdout too when asked) through the redacting reporter; its exit code."""
    if rep.mode == "json":
        rep.result(error_payload(e), "")
    rep.error(f"envci {command}: error: {e}")
    return int(e.exit_code)


if __name__ == "__main__":
    sys.exit(main())
