"""One handler per command: call the stage, say what it did.

Each handler imports what it needs when it runs: `envci --help` loads none of it, and a command
loads only its own stage's libraries.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from envci.errors import ConfigError, ExitCode, InfrastructureError, NotReadyError
from envci.invocation import Handler, Invocation, Result

if TYPE_CHECKING:
    from envci.locate import Located
    from envci.report.model import RunResult
    from envci.stages.logs import Options


def cluster(inv: Invocation) -> int:
    from envci.localcluster.command import main

    a = inv.args
    return main(a.action, a.output, a.archives, flavour=a.nodes)


def schema(inv: Invocation) -> int:
    from envci.config.reference import markdown
    from envci.config.schema import schema

    # Printed as is, whatever --output says: it is a document, not a result.
    print(markdown() if inv.args.format == "markdown" else json.dumps(schema(), indent=2), end="" if inv.args.format == "markdown" else "\n")
    return ExitCode.OK


def validate(inv: Invocation) -> Result:
    from envci.manifests import check_components
    from envci.plan import install_order

    cfg = inv.config(secrets=False)
    check_components(cfg)  # the manifest files too: provision would render them after changing things
    waves = install_order(cfg.spec.components)
    order = " -> ".join("[" + ", ".join(w) + "]" for w in waves)
    return Result({"valid": True, "name": cfg.identity.name, "namespace": cfg.identity.namespace, "install_order": waves},
                  f"{cfg.file}: valid\n  environment {cfg.identity.name} (namespace {cfg.identity.namespace})\n  install order: {order}")


def provision(inv: Invocation) -> Result:
    from envci.stages.provision import provision
    from envci.stages.wait_ready import wait_for_dependency, wait_ready

    cfg, kube = inv.config(), inv.kube()

    def wait_for(names: list[str]) -> None:
        wait_for_dependency(cfg, kube, inv.rep, names)

    if inv.args.timeout is not None and not inv.args.wait:
        raise ConfigError("--timeout of provision is the deadline of --wait", hint="add --wait, or run `envci wait-ready --timeout ...` next")
    with inv.diagnosed(cfg):
        res = provision(cfg, kube, inv.rep, wait_for_dependency=None if inv.args.no_wait_dependencies else wait_for)
        if inv.args.wait:
            res["ready"] = wait_ready(cfg, kube, inv.rep, timeout=inv.args.timeout)
    urls = "".join(f"\n  {k}: {v}" for k, v in res["urls"].items())
    made_room = "".join(f"\n  tore down expired environment {r['name']} to make room under the budget of {r['scope']} {r['key']}"
                        for r in res.get("reaped", []))
    ready = f"\nready ({res['ready']['seconds']}s)" if "ready" in res else ""
    return Result(res, f"environment {res['name']} provisioned in namespace {res['namespace']}" + (f"\nurls:{urls}" if urls else "") + made_room + ready)


def wait_ready(inv: Invocation) -> Result:
    from envci.stages.wait_ready import wait_ready

    cfg, kube = inv.config(secrets=False), inv.kube()
    inv.mask_secrets(cfg)  # logs in a diagnostics bundle are masked like everything else
    with inv.diagnosed(cfg):
        res = wait_ready(cfg, kube, inv.rep, components=inv.args.component, timeout=inv.args.timeout)
    return Result(res, f"environment {res['name']} is ready ({res['seconds']}s)")


def seed(inv: Invocation) -> Result:
    from envci.stages.seed import format_result, seed

    cfg, kube = inv.config(), inv.kube()
    with inv.diagnosed(cfg):
        res = seed(cfg, kube, inv.rep, only=inv.args.step)
    return Result(res, format_result(res))


def test(inv: Invocation) -> Result:
    from envci.stages.test import test

    out_dir = inv.report_dir()
    cfg, kube = inv.config(), inv.kube()
    with inv.diagnosed(cfg):
        run, files = test(cfg, kube, inv.rep, out_dir=out_dir, kubeconfig=inv.args.kubeconfig, suites=inv.args.suite)
    return _test_result(inv, run, files, publish=not inv.args.no_publish, bundle=inv.diagnose_tests(cfg, run))


def report(inv: Invocation) -> Result:
    from envci.report.files import read_report, report_paths

    out_dir = inv.report_dir()
    try:
        run = read_report(out_dir)
    except (FileNotFoundError, ValueError, KeyError) as e:
        raise ConfigError(f"cannot read the report: {e}", field="--output-dir", hint="run `envci test --output-dir DIR` first") from None
    return _test_result(inv, run, {k: str(p) for k, p in report_paths(out_dir).items()}, publish=True, bundle=None)


def _test_result(inv: Invocation, run: RunResult, files: dict[str, str], *, publish: bool, bundle: str | None) -> Result:
    from envci.ci.publish import publish_report
    from envci.report.model import outcome_exit_code
    from envci.stages.test import format_result, result_dict

    data = result_dict(run, files)
    if bundle:
        data["diagnostics"] = bundle
    if publish:
        data["published"] = publish_report(run, files, env=os.environ, warn=inv.rep.warn, comment=not inv.args.no_comment)
    return Result(data, format_result(run, files) + (f"\ndiagnostics: {bundle}" if bundle else ""), outcome_exit_code(run.outcome))


def teardown(inv: Invocation) -> Result:
    from envci.stages.teardown import teardown

    t = inv.locate()
    if t.missing:
        return Result({"name": None, "namespace": None, "deleted": False, "existed": False, "context": t.missing},
                      f"no environment of this build's {t.missing} exists; nothing to do")
    deadline = inv.args.deadline.total_seconds() if inv.args.deadline else None
    res = teardown(inv.kube(), inv.rep, namespace=t.namespace, name=t.name, timeout=inv.args.timeout.total_seconds(), force=inv.args.force,
                   build=t.build, deadline=deadline)
    if not res["existed"]:
        return Result(res, f"environment {res['name']} did not exist; nothing to do")
    if res.get("gone") is False:
        return Result(res, f"environment {res['name']}: everything is deleted or being deleted; its namespace was still terminating at the deadline")
    return Result(res, f"environment {res['name']} removed")


def status(inv: Invocation) -> Result:
    from envci.stages.status import format_status, status

    t = inv.locate()
    if t.missing:
        return Result({"name": None, "exists": False, "context": t.missing}, f"no environment of this build's {t.missing} exists", ExitCode.NOT_READY)
    res = status(inv.kube(), namespace=t.namespace, name=t.name)
    if res is None:
        return Result({"name": t.name, "exists": False}, f"environment {t.name} does not exist", ExitCode.NOT_READY)
    return Result(res, format_status(res), ExitCode.OK if res["ready"] else ExitCode.NOT_READY)


def list_(inv: Invocation) -> Result:
    from envci.stages.status import format_list, overview

    res = overview(inv.kube(), app=inv.args.app, warn=inv.rep.warn)
    return Result(res, format_list(res["environments"], res["budgets"]))


def up(inv: Invocation) -> Result:
    from envci.ci.publish import publish_report
    from envci.stages.up import format_result, up

    a = inv.args

    def publish(run: RunResult, files: dict[str, str]) -> dict[str, Any] | None:
        return None if a.no_publish else publish_report(run, files, env=os.environ, warn=inv.rep.warn, comment=True)

    code, res = up(inv.config(), inv.kube(), inv.rep, out_dir=inv.report_dir(), keep=a.keep, keep_on_failure=a.keep_on_failure,
                   kubeconfig=a.kubeconfig, publish=publish)
    return Result(res, format_result(res, keep=a.keep), code)


def reap(inv: Invocation) -> Result:
    from envci.ci.tokens import pr_state_check
    from envci.stages.reap import reap

    a = inv.args
    pr_open = pr_state_check(os.environ) if a.closed_prs else None  # before the cluster: a missing token is bad input
    res = reap(inv.kube(), inv.rep, dry_run=a.dry_run, app=a.app, pr_open=pr_open, suspend_after=a.suspend_after)
    return Result(res, _reap_text(res, dry_run=a.dry_run), ExitCode.INFRASTRUCTURE if res["failed"] else ExitCode.OK)


def _reap_text(res: Mapping[str, Any], *, dry_run: bool) -> str:
    verb = "would reap" if dry_run else "reaped"
    lines = [f"{verb} {r['namespace']}: {r['reason']}" for r in res["reaped"]]
    lines += [f"{'would suspend' if dry_run else 'suspended'} {r['namespace']}: {r['reason']}" for r in res.get("suspended", [])]
    lines += [f"failed to {f.get('action', 'reap')} {f['namespace']}: {f['error']}" for f in res["failed"]]
    return "\n".join(lines) or "nothing to reap"


def _missing(t: Located) -> NotReadyError:
    return NotReadyError(f"no environment of this build's {t.missing} exists", hint="`envci list` shows the environments; pass --env NAME for one of them")


def suspend(inv: Invocation) -> Result:
    from envci.stages.suspend import suspend

    t = inv.locate()
    if t.missing:
        raise _missing(t)
    res = suspend(inv.kube(), inv.rep, namespace=t.namespace, name=t.name)
    return Result(res, _suspend_text(res))


def _suspend_text(res: Mapping[str, Any]) -> str:
    if not res["changed"]:
        return f"environment {res['name']} is suspended already (since {res['suspended_at']}); nothing changed"
    lines = [f"environment {res['name']} suspended: {len(res['workloads'])} workload(s) stopped; volumes and data kept (`envci resume` brings it back)"]
    lines += [f"  {w['workload']}: {w['action']}" for w in res["workloads"]]
    lines += [f"  {w['workload']} keeps running: {w['reason']}" for w in res["left_running"]]
    return "\n".join(lines)


def resume(inv: Invocation) -> Result:
    from envci.stages.diagnose import Target, on_failure
    from envci.stages.suspend import resume, wait_recorded
    from envci.stages.teardown import find_namespace
    from envci.stages.wait_ready import wait_ready

    a = inv.args
    t = inv.locate()
    if t.missing:
        raise _missing(t)
    kube = inv.kube()
    cfg = inv.config(secrets=False, check_files=False) if os.path.exists(a.config) else None
    if cfg is not None:
        inv.mask_secrets(cfg)  # logs in a diagnostics bundle are masked like everything else
    ns = find_namespace(kube, namespace=t.namespace, name=t.name)
    if ns is None:
        raise NotReadyError(f"environment {t.name or t.namespace} does not exist", hint="`envci list` shows the environments")
    ns_name = ns["metadata"]["name"]

    def wait(name: str, namespace: str) -> dict[str, Any]:
        # With envci.yaml, exactly wait-ready (its components, each with its own wait.timeout);
        # without, every component that has workloads.
        if cfg is not None:
            return wait_ready(cfg, kube, inv.rep, timeout=a.timeout)
        return wait_recorded(kube, inv.rep, name, namespace, timeout=a.timeout)

    target = Target.of(cfg, "resume", kubeconfig=a.kubeconfig) if cfg else Target(t.name or ns_name, ns_name, "resume", kubeconfig=a.kubeconfig)
    with on_failure(kube, inv.rep, target, inv.report_dir()):
        res = resume(kube, inv.rep, namespace=ns_name, wait=None if a.no_wait else wait)
    return Result(res, _resume_text(res))


def _resume_text(res: Mapping[str, Any]) -> str:
    if res["changed"]:
        head = f"environment {res['name']} resumed" + (f" (suspended since {res['suspended_at']})" if res["suspended_at"] else "")
        head += f": {len(res['workloads'])} workload(s) restored"
    else:
        head = f"environment {res['name']} is not suspended; nothing to restore"
    lines = [head] + [f"  {w['workload']}: {w['action']}" for w in res["workloads"]]
    lines += [f"  {s['workload']} not restored: {s['reason']}" for s in res["skipped"]]
    if res["ready"] is None:
        lines.append("not waited for (--no-wait): `envci wait-ready` or `envci status` says when it is ready")
    else:
        lines.append(f"ready ({res['seconds']}s)")
    return "\n".join(lines)


def extend(inv: Invocation) -> Result:
    from envci.stages.reap import extend

    t = inv.locate()
    if t.missing:
        raise InfrastructureError(f"no environment of this build's {t.missing} exists", hint="`envci list` shows the environments")
    res = extend(inv.kube(), inv.rep, namespace=t.namespace, name=t.name, ttl=inv.args.ttl)
    return Result(res, f"{res['namespace']} expires at {res['expires_at']}")


def logs(inv: Invocation) -> int:
    from envci.podlogs import Style, use_colour
    from envci.stages.logs import Printer, logs

    opts = _log_options(inv)  # before envci.yaml and the cluster: contradictory flags change nothing
    components: list[str] = []
    releases: dict[str, str] = {}
    namespace: str | None
    if os.path.exists(inv.args.config):
        cfg = inv.config(secrets=False, check_files=False)
        inv.mask_secrets(cfg, inv.rep.warn)
        name, namespace = cfg.identity.name, cfg.identity.namespace
        components = [c.name for c in cfg.spec.components]
        releases = {(c.helm.release or c.name): c.name for c in cfg.spec.components if c.helm}
    else:  # --env, or the environment of this CI context, found as teardown finds it
        t = inv.locate()
        if t.missing:
            raise NotReadyError(f"no environment of this build's {t.missing} exists",
                                hint="`envci list` shows the environments; `envci logs --env NAME` reads one of them")
        name, namespace = str(t.name), t.namespace
    style = Style(mode=inv.args.output, colour=use_colour(is_tty=sys.stdout.isatty(), env=os.environ, mode=inv.args.output))
    logs(inv.kube(), Printer(style, sys.stdout), inv.rep, name=name, namespace=namespace, components=components, releases=releases, opts=opts)
    return ExitCode.OK


def _log_options(inv: Invocation) -> Options:
    from envci.stages.logs import Options

    a = inv.args
    if a.previous and a.follow:
        raise ConfigError("an instance before a restart has ended: there is nothing to follow", field="--previous",
                          hint="use --previous without -f, or -f without --previous")
    tail = a.tail
    if tail is not None and tail < 0:
        if tail != -1:
            raise ConfigError(f"{tail} is not a number of lines", field="--tail", hint="give --tail 0 or more (-1: all)")
        tail = None  # -1 is how kubectl says "all"
    return Options(component=a.component, follow=a.follow, previous=a.previous, tail=tail, since=a.since)


HANDLERS: Mapping[str, Handler] = {
    "validate": validate,
    "schema": schema,
    "provision": provision,
    "wait-ready": wait_ready,
    "seed": seed,
    "test": test,
    "report": report,
    "teardown": teardown,
    "status": status,
    "list": list_,
    "up": up,
    "reap": reap,
    "logs": logs,
    "extend": extend,
    "suspend": suspend,
    "resume": resume,
    "cluster": cluster,
}
"""Every command of `envci`, by the name the parser gives it."""
