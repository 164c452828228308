"""Command-line interface: argument parsing only. Each command calls one stage function."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from envci import __version__
from envci.errors import CancelledError, ConfigError, ConfigErrors, EnvciError, ExitCode, InfrastructureError, NotReadyError
from envci.output import Reporter

EXIT_CODES_HELP = """exit codes:
  0  success
  1  tests failed (the environment worked; the code under test did not)
  2  bad input: envci.yaml, a file it names, a flag, or a name envci does not own (nothing was changed)
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
                       help="override `values.NAME` of envci.yaml (repeatable; default: $ENVCI_SET, space-separated)")
    p.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
    p.add_argument("-o", "--output", choices=("text", "json"), default="text", help="result format on stdout (progress always goes to stderr)")


REPORT_DIR_DEFAULT = "(default: $ENVCI_REPORT_DIR, else envci-report/ at the root of the CI checkout, or here outside CI)"


def _report_dir(args: argparse.Namespace) -> Any:
    from pathlib import Path

    from envci.ci.outputs import report_dir

    return Path(args.output_dir) if args.output_dir else report_dir(os.environ)


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


def _load(args: argparse.Namespace, *, secrets: bool = True, check_files: bool = True) -> Any:
    from envci.ci import detect_context
    from envci.config.loader import env_secret_resolver, load_config, placeholder_resolver

    ctx = detect_context(os.environ)

    def from_cluster(name: str, ref: Any) -> str:
        from envci.kube.secrets import read_secret_key

        return read_secret_key(_kube(args), name, ref)

    from envci.config.overrides import from_environment, parse_assignments

    resolver = env_secret_resolver(os.environ, from_cluster) if secrets else placeholder_resolver
    overrides = parse_assignments(args.set_values if args.set_values is not None else from_environment(os.environ))
    return load_config(args.config, ctx, env_override=args.env, resolve_secret=resolver, check_files=check_files, values_override=overrides)


def _kube(args: argparse.Namespace) -> Any:
    from envci.kube.client import connect

    return connect(args.kubeconfig)


def _target(args: argparse.Namespace, rep: Reporter) -> dict[str, str | None]:
    """Which environment teardown, status and extend mean; none of them needs envci.yaml.

    - `--env NAME` (or ENVCI_ENV) without envci.yaml: that environment, whoever owns it.
    - envci.yaml: the name its `name:` and the CI context give, as provision derived it.
    - neither (a stop job with no checkout, a branch already gone): the environment provision made
      for this CI context, found by its labels; `missing` describes the context when there is none.
    """
    if args.env and not os.path.exists(args.config):
        from envci.identity import dns_label

        return {"name": dns_label(args.env), "namespace": None}
    if os.path.exists(args.config):
        cfg = _load(args, secrets=False, check_files=False)
        build = "" if args.env else cfg.identity.ctx.build  # an explicit --env means "this one", whoever owns it
        return {"name": cfg.identity.name, "namespace": cfg.identity.namespace, "build": build}
    from envci.ci import detect_context
    from envci.stages.teardown import describe_context, find_for_context

    ctx = detect_context(os.environ)
    context = describe_context(ctx)
    rep.progress(f"no {args.config} here: looking for the environment of this build's {context} by its labels")
    ns = find_for_context(_kube(args), ctx, prefer=os.environ.get("ENVCI_NAME", ""))
    if ns is None:
        return {"name": None, "namespace": None, "missing": context}
    meta = ns["metadata"]
    return {"name": (meta.get("labels") or {}).get("envci.io/env") or meta["name"], "namespace": meta["name"], "build": ctx.build}


def run(args: argparse.Namespace, rep: Reporter) -> int:
    cmd = args.command
    if args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig
    if cmd == "cluster":
        from envci.localcluster.command import main as cluster_main

        return cluster_main(args.action, args.output, args.archives, flavour=args.nodes)
    if cmd == "schema":
        from envci.config.reference import markdown
        from envci.config.schema import schema

        print(markdown() if args.format == "markdown" else json.dumps(schema(), indent=2), end="" if args.format == "markdown" else "\n")
        return ExitCode.OK
    if cmd == "validate":
        from envci.manifests import check_components
        from envci.plan import install_order

        cfg = _load(args, secrets=False)
        check_components(cfg)  # the manifest files too: provision would render them after changing things
        waves = install_order(cfg.spec.components)
        rep.result(
            {"valid": True, "name": cfg.identity.name, "namespace": cfg.identity.namespace, "install_order": waves},
            f"{cfg.file}: valid\n  environment {cfg.identity.name} (namespace {cfg.identity.namespace})\n"
            f"  install order: {' -> '.join('[' + ', '.join(w) + ']' for w in waves)}",
        )
        return ExitCode.OK
    if cmd == "provision":
        from envci.stages.provision import provision
        from envci.stages.wait_ready import wait_ready

        cfg = _load(args)
        kube = _kube(args)
        waiter = None if args.no_wait_dependencies else (lambda names: wait_ready(cfg, kube, rep, components=names))
        with _diagnosed(args, rep, cfg, kube):
            res = provision(cfg, kube, rep, wait_between_waves=waiter)
        urls = "".join(f"\n  {k}: {v}" for k, v in res["urls"].items())
        rep.result(res, f"environment {res['name']} provisioned in namespace {res['namespace']}" + (f"\nurls:{urls}" if urls else ""))
        return ExitCode.OK
    if cmd == "wait-ready":
        from envci.stages.wait_ready import wait_ready

        cfg = _load(args, secrets=False)
        kube = _kube(args)
        _learn_secrets(args, cfg)  # logs in a diagnostics bundle are masked like everything else
        with _diagnosed(args, rep, cfg, kube):
            res = wait_ready(cfg, kube, rep, components=args.component, timeout=args.timeout)
        rep.result(res, f"environment {res['name']} is ready ({res['seconds']}s)")
        return ExitCode.OK
    if cmd == "seed":
        from envci.stages.seed import format_result, seed

        cfg = _load(args)
        kube = _kube(args)
        with _diagnosed(args, rep, cfg, kube):
            res = seed(cfg, kube, rep, only=args.step)
        rep.result(res, format_result(res))
        return ExitCode.OK
    if cmd in ("test", "report"):
        return _test_or_report(args, rep)
    if cmd == "logs":
        return _logs(args, rep)
    if cmd == "teardown":
        from envci.stages.teardown import teardown

        t = _target(args, rep)
        if t.get("missing"):
            rep.result({"name": None, "namespace": None, "deleted": False, "existed": False, "context": t["missing"]},
                       f"no environment of this build's {t['missing']} exists; nothing to do")
            return ExitCode.OK
        res = teardown(
            _kube(args), rep, namespace=t["namespace"], name=t["name"], timeout=args.timeout.total_seconds(),
            force=args.force, build=t.get("build") or "",
        )
        rep.result(res, f"environment {res['name']} removed" if res["existed"] else f"environment {res['name']} did not exist; nothing to do")
        return ExitCode.OK
    if cmd == "status":
        from envci.stages.status import format_status, status

        t = _target(args, rep)
        if t.get("missing"):
            rep.result({"name": None, "exists": False, "context": t["missing"]}, f"no environment of this build's {t['missing']} exists")
            return ExitCode.NOT_READY
        res = status(_kube(args), namespace=t["namespace"], name=t["name"])
        if res is None:
            rep.result({"name": t["name"], "exists": False}, f"environment {t['name']} does not exist")
            return ExitCode.NOT_READY
        rep.result(res, format_status(res))
        return ExitCode.OK if res["ready"] else ExitCode.NOT_READY
    if cmd == "list":
        from envci.stages.status import format_list, list_environments

        envs = list_environments(_kube(args), app=args.app)
        rep.result({"environments": envs}, format_list(envs))
        return ExitCode.OK
    if cmd == "up":
        from envci.ci.publish import publish_report
        from envci.stages.up import format_result as format_up
        from envci.stages.up import up

        def publish(run_: Any, files: dict[str, str]) -> Any:
            return None if args.no_publish else publish_report(run_, files, env=os.environ, warn=rep.warn, comment=True)

        code, res = up(_load(args), _kube(args), rep, out_dir=_report_dir(args), keep=args.keep, keep_on_failure=args.keep_on_failure,
                       kubeconfig=args.kubeconfig, publish=publish)
        rep.result(res, format_up(res, keep=args.keep))
        return code
    if cmd == "reap":
        from envci.stages.reap import github_pr_open, gitlab_mr_open, reap

        pr_open = None
        if args.closed_prs:
            if os.environ.get("ENVCI_GITHUB_TOKEN"):
                pr_open = github_pr_open(os.environ["ENVCI_GITHUB_TOKEN"], os.environ.get("GITHUB_API_URL", "https://api.github.com"))
            elif os.environ.get("ENVCI_GITLAB_TOKEN") and os.environ.get("CI_API_V4_URL"):
                pr_open = gitlab_mr_open(os.environ["ENVCI_GITLAB_TOKEN"], os.environ["CI_API_V4_URL"])
            else:
                raise ConfigError("--closed-prs needs ENVCI_GITHUB_TOKEN, or ENVCI_GITLAB_TOKEN with CI_API_V4_URL", field="--closed-prs")
        res = reap(_kube(args), rep, dry_run=args.dry_run, app=args.app, pr_open=pr_open)
        verb = "would reap" if args.dry_run else "reaped"
        lines = [f"{verb} {r['namespace']}: {r['reason']}" for r in res["reaped"]] + [f"failed {f['namespace']}: {f['error']}" for f in res["failed"]]
        rep.result(res, "\n".join(lines) or "nothing to reap")
        return ExitCode.INFRASTRUCTURE if res["failed"] else ExitCode.OK
    if cmd == "extend":
        from envci.stages.reap import extend

        t = _target(args, rep)
        if t.get("missing"):
            raise InfrastructureError(f"no environment of this build's {t['missing']} exists", hint="`envci list` shows the environments")
        res = extend(_kube(args), rep, namespace=t["namespace"], name=t["name"], ttl=args.ttl)
        rep.result(res, f"{res['namespace']} expires at {res['expires_at']}")
        return ExitCode.OK
    raise AssertionError(cmd)


def _test_or_report(args: argparse.Namespace, rep: Reporter) -> int:
    from envci.ci.publish import publish_report
    from envci.stages.test import format_result, result_dict

    out_dir = _report_dir(args)
    if args.command == "test":
        from envci.stages.test import test

        cfg, kube = _load(args), _kube(args)
        with _diagnosed(args, rep, cfg, kube):
            run_, files = test(cfg, kube, rep, out_dir=out_dir, kubeconfig=args.kubeconfig, suites=args.suite)
        bundle = _diagnose_tests(args, rep, cfg, kube, run_)
        publish = not args.no_publish
    else:
        from envci.report.files import read_report

        try:
            run_ = read_report(out_dir)
        except (FileNotFoundError, ValueError, KeyError) as e:
            raise ConfigError(f"cannot read the report: {e}", field="--output-dir", hint="run `envci test --output-dir DIR` first") from None
        files = {k: str(out_dir / f) for k, f in (("junit", "junit.xml"), ("summary", "summary.md"), ("json", "report.json"), ("dotenv", "test.env"))}
        publish = True
    data = result_dict(run_, files)
    if args.command == "test" and bundle:
        data["diagnostics"] = bundle
    if publish:
        data["published"] = publish_report(run_, files, env=os.environ, warn=rep.warn, comment=not args.no_comment)
    rep.result(data, format_result(run_, files) + (f"\ndiagnostics: {bundle}" if args.command == "test" and bundle else ""))
    return {"passed": ExitCode.OK, "failed": ExitCode.TESTS_FAILED}.get(run_.outcome, ExitCode.INFRASTRUCTURE)


def _diagnosed(args: argparse.Namespace, rep: Reporter, cfg: Any, kube: Any) -> Any:
    """Around a stage: a failure writes the diagnostics bundle into the report folder and names it in the error."""
    from envci.stages.diagnose import Target, on_failure

    return on_failure(kube, rep, Target.of(cfg, args.command, kubeconfig=args.kubeconfig), _report_dir(args))


def _diagnose_tests(args: argparse.Namespace, rep: Reporter, cfg: Any, kube: Any, run_: Any) -> str | None:
    """Tests that did not pass are a failure of the test stage: the bundle shows the environment they ran against."""
    if run_.outcome == "passed":
        return None
    from envci.stages.diagnose import Target, collect, summary_path

    c = run_.counts
    error = f"tests {run_.outcome}: {c.tests} tests, {c.failed + c.errors} failed (the test report is beside diagnostics/)"
    path = collect(kube, rep, Target.of(cfg, "test", kubeconfig=args.kubeconfig), _report_dir(args), error=error)
    return summary_path(path) if path else None


def _learn_secrets(args: argparse.Namespace, cfg: Any, warn: Any = None) -> None:
    """Register the values of envci.yaml's secrets with the redactor where they can be read.

    Commands that only read (wait-ready, logs) load envci.yaml without resolving secrets, yet print
    or write what pods log, which may include one. A secret that cannot be read (a variable not
    set on a person's machine) must not stop them: it is skipped, with a warning when `warn` is given."""
    from envci.config.loader import env_secret_resolver
    from envci.kube.secrets import read_secret_key
    from envci.redact import register

    resolve = env_secret_resolver(os.environ, lambda name, ref: read_secret_key(_kube(args), name, ref))
    for name, ref in cfg.spec.secrets.items():
        try:
            register(resolve(name, ref))
        except EnvciError as e:
            if warn:
                warn(f"secret {name!r} could not be read ({e.message.splitlines()[0]}); its value is not masked in what is printed")


def _logs(args: argparse.Namespace, rep: Reporter) -> int:
    from envci.podlogs import Style, use_colour
    from envci.stages.logs import Options, Printer, logs

    if args.previous and args.follow:
        raise ConfigError("an instance before a restart has ended: there is nothing to follow", field="--previous",
                          hint="use --previous without -f, or -f without --previous")
    if args.tail is not None and args.tail < 0:
        if args.tail != -1:
            raise ConfigError(f"{args.tail} is not a number of lines", field="--tail", hint="give --tail 0 or more (-1: all)")
        args.tail = None
    components: list[str] = []
    releases: dict[str, str] = {}
    if os.path.exists(args.config):
        cfg = _load(args, secrets=False, check_files=False)
        _learn_secrets(args, cfg, rep.warn)
        name, namespace = cfg.identity.name, cfg.identity.namespace
        components = [c.name for c in cfg.spec.components]
        releases = {(c.helm.release or c.name): c.name for c in cfg.spec.components if c.helm}
    else:  # --env, or the environment of this CI context, found as teardown finds it
        t = _target(args, rep)
        if t.get("missing"):
            raise NotReadyError(f"no environment of this build's {t['missing']} exists",
                                hint="`envci list` shows the environments; `envci logs --env NAME` reads one of them")
        name, namespace = str(t["name"]), t["namespace"]
    style = Style(mode=args.output, colour=use_colour(is_tty=sys.stdout.isatty(), env=os.environ, mode=args.output))
    opts = Options(component=args.component, follow=args.follow, previous=args.previous, tail=args.tail, since=args.since)
    logs(_kube(args), Printer(style, sys.stdout), rep, name=name, namespace=namespace, components=components, releases=releases, opts=opts)
    return ExitCode.OK


def _on_sigterm(signum: int, frame: Any) -> None:
    raise CancelledError(f"stopped by signal {signum}", hint="run `envci teardown` (or let the janitor) remove what exists")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    rep = Reporter(args.output)
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        read_durations(args)
        return int(run(args, rep))
    except KeyboardInterrupt:
        print("envci: cancelled", file=sys.stderr)
        return ExitCode.CANCELLED
    except EnvciError as e:
        return report_error(args.command, e, rep)
    except Exception as e:  # noqa: BLE001 - an unexpected failure is still an infrastructure error to CI
        import traceback

        rep.error(traceback.format_exc())
        rep.error(f"envci {args.command}: internal error: {e} (please report this)")
        return ExitCode.INFRASTRUCTURE


def error_payload(e: EnvciError) -> dict[str, Any]:
    """The JSON form of an error, for `--output json` (Reporter.result redacts it)."""
    payload: dict[str, Any] = {"error": e.message, "hint": e.hint, "exit_code": int(e.exit_code), "type": type(e).__name__}
    if isinstance(e, ConfigErrors):
        payload["errors"] = [{"file": x.file, "line": x.line, "field": x.field, "message": x.detail, "hint": x.hint} for x in e.errors]
    elif isinstance(e, ConfigError):  # one problem: same shape, so CI wrappers can annotate file and line
        payload["errors"] = [{"file": e.file, "line": e.line, "field": e.field, "message": e.detail, "hint": e.hint}]
    if isinstance(e, NotReadyError):
        payload["failures"] = e.failures
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
