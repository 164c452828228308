"""`job:` seed steps: run a Kubernetes Job in the environment (a migration or fixture loader).

The image is given, or taken from a component's workload (`image_from`), so the seed runs the
same build as the application. A Job that already succeeded with the same spec is not run again
on a re-run; a failed Job stops the stage with the controller's reason (BackoffLimitExceeded,
DeadlineExceeded) and the last log lines of its pods.
"""

from __future__ import annotations

from envci.config.model import JobSeed
from envci.durations import parse_duration
from envci.kube.jobs import env_secret_name, env_secret_object, job_object, run_job, split_env
from envci.seeders.base import SeedContext, SeedError, StepResult, component_image

SEED_LABEL = "envci.io/seed"
LOG_LINES = 20


def run(step: JobSeed, ctx: SeedContext) -> StepResult:
    # The Job's name, its one image source and its component were checked when envci.yaml loaded.
    image = step.image or component_image(ctx, step.image_from or "", "image_from")
    timeout = parse_duration(step.timeout).total_seconds()
    _, hidden = split_env(step.env, ctx.cfg.secret_keys("seed", ctx.index, "env"))
    secret = env_secret_object(env_secret_name(step.job), hidden, {SEED_LABEL: step.job}) if hidden else None
    obj = job_object(
        step.job,
        image=image,
        command=step.command,
        env=step.env,
        secret_env={k: env_secret_name(step.job) for k in hidden},
        labels={SEED_LABEL: step.job, "app.kubernetes.io/managed-by": "envci"},
        pod_labels={**step.labels, SEED_LABEL: step.job},
        backoff_limit=step.backoff_limit,
        deadline_seconds=int(timeout),
    )
    result = run_job(ctx.kube, ctx.namespace, obj, timeout=timeout, reuse_succeeded=True, log_lines=LOG_LINES, progress=ctx.progress, secret=secret)
    if not result.succeeded:
        raise SeedError(
            result.describe(),
            kind="job",
            hint=f"fix the seed Job (image {image}); `kubectl logs -n {ctx.namespace} job/{step.job}` shows its output",
            details=result.as_dict(),
        )
    for pod, text in result.logs.items():
        tail = text.rstrip().splitlines()[-5:]
        for line in tail:
            ctx.progress(f"{pod} | {line}")
    summary = f"Job {step.job} " + ("already succeeded earlier" if result.reused else f"succeeded in {result.seconds:.1f}s")
    return StepResult("job", summary, changed=not result.reused, details=result.as_dict())
