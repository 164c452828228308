"""The typed model of envci.yaml.

Pydantic gives us strict validation, unknown-key rejection and a JSON Schema from one definition,
which hand-written checks would duplicate and drift from. Field descriptions are what
`envci schema` publishes and what README's reference is generated from.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator
from pydantic_core import PydanticCustomError

from envci.durations import parse_duration
from envci.s3names import check_bucket_name, parse_s3_url
from envci.sources import ENV, PG, S3, allowed, entry_problem, env_source, refusal, s3_source

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
RESERVED_LABEL_PREFIX = "envci.io/"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def invalid(message: str, hint: str, *, at: str | None = None) -> PydanticCustomError:
    """A validation error carrying its hint and, for a check across fields, the field it is about;
    the loader turns both into the ConfigError's hint and field (and so its line)."""
    return PydanticCustomError("envci", "{message}", {"message": message, "hint": hint, "at": at})


def is_template(v: str) -> bool:
    """The first validation sees the file as written: a templated value is checked once rendered."""
    return "{{" in v or "{%" in v


def _scalar_text(v: Any) -> Any:
    # YAML reads `DEBUG: 1` or `VERBOSE: true` as numbers and booleans; a container sees text.
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v) if isinstance(v, (int, float)) else v


EnvValue = Annotated[str, BeforeValidator(_scalar_text)]


def _duration(v: Any) -> str:
    parse_duration(v)  # raises ValueError with the accepted forms
    return str(v)


Duration = Annotated[str, Field(description="A duration such as 90s, 30m, 4h, 1d or 2h30m")]


class SecretRef(Strict):
    """Where a secret's value comes from. Values are never written into envci.yaml itself."""

    from_env: str | None = Field(None, description="Name of an environment variable on the CI runner")
    secret: str | None = Field(None, description="Name of a Kubernetes Secret (in `secret_namespace`)")
    key: str | None = Field(None, description="Key inside the Kubernetes Secret")
    secret_namespace: str | None = Field(
        None, description="Namespace of the Kubernetes Secret (default: the current kubeconfig namespace)"
    )

    @model_validator(mode="after")
    def _one_source(self) -> "SecretRef":
        if bool(self.from_env) == bool(self.secret):
            raise ValueError("give exactly one of `from_env` or `secret` (with `key`)")
        if self.secret and not self.key:
            raise ValueError("`secret` needs `key`: the key inside the Kubernetes Secret")
        return self


class Quota(Strict):
    """A ResourceQuota for the environment's namespace; set a field to null to leave it unlimited."""

    cpu: str | None = Field("8", description="requests.cpu for the whole namespace")
    memory: str | None = Field("16Gi", description="requests.memory for the whole namespace")
    limits_cpu: str | None = Field(None, description="limits.cpu for the whole namespace")
    limits_memory: str | None = Field(None, description="limits.memory for the whole namespace")
    pods: int | None = Field(100, description="Maximum number of pods")
    services: int | None = Field(None, description="Maximum number of Services")
    persistentvolumeclaims: int | None = Field(20, description="Maximum number of PVCs")


class Limits(Strict):
    """A LimitRange: defaults for containers that set no requests or limits."""

    default_cpu: str | None = Field("500m", description="Default container CPU limit")
    default_memory: str | None = Field("512Mi", description="Default container memory limit")
    default_request_cpu: str | None = Field("50m", description="Default container CPU request")
    default_request_memory: str | None = Field("64Mi", description="Default container memory request")
    max_cpu: str | None = Field(None, description="Maximum CPU limit of one container")
    max_memory: str | None = Field(None, description="Maximum memory limit of one container")


class Network(Strict):
    """Network isolation between environments."""

    isolate: bool = Field(
        True,
        description="Install a default-deny ingress NetworkPolicy that still allows traffic inside the namespace",
    )
    allow_from_namespaces: list[str] = Field(
        default_factory=lambda: ["ingress-nginx"],
        description="Namespaces (by name) allowed to reach the environment, e.g. your ingress controller's",
    )


class NamespaceSettings(Strict):
    labels: dict[str, str] = Field(default_factory=dict, description="Extra labels on the namespace")
    annotations: dict[str, str] = Field(default_factory=dict, description="Extra annotations on the namespace")
    prefix: str = Field("envci-", description="Prefix of the namespace name")
    quota: Quota | None = Field(default_factory=Quota, description="ResourceQuota; null for none")
    limits: Limits | None = Field(default_factory=Limits, description="LimitRange; null for none")
    network: Network = Field(default_factory=Network, description="Network isolation")

    @field_validator("labels", "annotations")
    @classmethod
    def _not_reserved(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if key.startswith(RESERVED_LABEL_PREFIX) or key == "app.kubernetes.io/managed-by":
                raise ValueError(
                    f"{key!r} is reserved: envci sets it to track the environment; choose another key"
                )
        return v


class Helm(Strict):
    """A Helm release."""

    chart: str = Field(
        description="Local chart directory (relative to envci.yaml), a repo chart name with `repo`, or oci://..."
    )
    repo: str | None = Field(None, description="Chart repository URL for a named chart")
    version: str | None = Field(None, description="Chart version (required for repo and oci:// charts)")
    release: str | None = Field(None, description="Release name (default: the component's name)")
    values_files: list[str] = Field(default_factory=list, description="Values files, relative to envci.yaml, merged in order as `helm -f` merges them (maps key by key, lists replaced)")
    values: dict[str, Any] = Field(default_factory=dict, description="Inline values (templated), merged over the values files")

    @model_validator(mode="after")
    def _remote_needs_version(self) -> "Helm":
        remote = self.repo or self.chart.startswith("oci://")
        if remote and not self.version:
            raise ValueError("a repository or oci:// chart needs `version` so builds are reproducible")
        return self


class Wait(Strict):
    timeout: Duration = Field("5m", description="How long wait-ready waits for this component")
    enabled: bool = Field(True, description="Whether wait-ready waits for this component at all")

    _v = field_validator("timeout", mode="before")(_duration)


class Expose(Strict):
    """How the component is reached: gives the environment's URLs."""

    service: str | None = Field(None, description="Service name (default: the component's name)")
    port: int = Field(80, ge=1, le=65535, description="Service port")
    host: str | None = Field(None, description="Host name (templated), e.g. `{{ env.name }}.preview.example.com`")
    path: str = Field("/", description="Path prefix of the URL")
    scheme: Literal["http", "https"] = Field("http", description="URL scheme")


class Component(Strict):
    name: str = Field(description="DNS-1123 label, unique in the file, at most 40 characters")
    helm: Helm | None = Field(None, description="Install a Helm chart")
    manifests: list[str] | None = Field(None, description="Kubernetes manifest files or globs, relative to envci.yaml")
    depends_on: list[str] = Field(default_factory=list, description="Components installed and ready before this one")
    wait: Wait = Field(default_factory=Wait, description="Readiness waiting")
    expose: Expose | None = Field(None, description="How to reach the component (gives ENVCI_URL_<NAME>)")

    @field_validator("name")
    @classmethod
    def _dns(cls, v: str) -> str:
        if not DNS_LABEL.match(v) or len(v) > 40:
            raise ValueError(f"{v!r} is not a DNS-1123 label of at most 40 characters (a-z, 0-9, '-')")
        return v

    @model_validator(mode="after")
    def _one_kind(self) -> "Component":
        if (self.helm is None) == (self.manifests is None):
            raise ValueError("give exactly one of `helm` or `manifests`")
        return self


class SqlSeed(Strict):
    sql: list[str] = Field(description="SQL files run in order, one transaction per file")
    component: str | None = Field(None, description="Database component reached by port-forward")
    service: str | None = Field(None, description="Service to port-forward to (default: the component's name)")
    port: int = Field(5432, description="Database port")
    url: str | None = Field(None, description="A database URL instead of a port-forward (templated)")
    database: str = Field("postgres", description="Database name")
    user: str = Field("postgres", description="Database user")
    password: str | None = Field(None, description="Name of a secret in `secrets:` holding the password")

    @model_validator(mode="after")
    def _a_database(self) -> "SqlSeed":
        if not (self.component or self.service or self.url):
            raise invalid("needs `component`, `service` or `url` to know which database to seed", "e.g. `component: db`")
        return self


class RestoreSource(Strict):
    """Where a `restore:` step's dump comes from: exactly one of `file`, `environment` or `url_secret`."""

    file: str | None = Field(
        None, description="A dump file, relative to envci.yaml: plain SQL (also gzipped) or a pg_dump archive (custom, tar or directory format)"
    )
    environment: str | None = Field(
        None, description="Name of another envci environment: envci port-forwards to its database and takes a pg_dump of it"
    )
    url_secret: str | None = Field(
        None, description="Name of a secret in `secrets:` holding the URL of a database to take a pg_dump of"
    )
    component: str | None = Field(None, description="With `environment`: its database component (default: the step's `component`)")
    service: str | None = Field(None, description="With `environment`: the Service to port-forward to (default: the step's `service`)")
    port: int | None = Field(None, description="With `environment`: the database port (default: the step's `port`)")
    database: str | None = Field(None, description="With `environment`: the database to dump (default: the step's `database`)")
    user: str | None = Field(None, description="With `environment`: the user to dump as (default: the step's `user`)")
    password: str | None = Field(
        None, description="With `environment` or `url_secret`: name of a secret holding the password (default: the step's `password` "
        "for an environment, the URL's own for `url_secret`)"
    )

    @model_validator(mode="after")
    def _one_source(self) -> "RestoreSource":
        given = [k for k in ("file", "environment", "url_secret") if getattr(self, k)]
        if len(given) != 1:
            raise invalid("give exactly one of `file`, `environment` or `url_secret`",
                          "e.g. `restore: {environment: shop-main}`, or `restore: db/snapshot.dump` for a file")
        if not self.environment:
            extra = [k for k in ("component", "service", "port", "database", "user") if getattr(self, k) is not None]
            if extra:
                raise invalid(f"`{extra[0]}` says where to find another environment's database, and this source is not an environment",
                              "a `url_secret` URL names its own host, port, database and user", at=extra[0])
        if self.file and self.password:
            raise invalid("a dump file needs no password", "remove `password` from `restore:`", at="password")
        if self.environment and not is_template(self.environment) and not DNS_LABEL.match(self.environment):
            raise invalid(f"{self.environment!r} is not an environment name", "as `envci list` shows it, e.g. shop-main", at="environment")
        return self


RestoreFrom = Annotated[
    Annotated[str, Tag("str")] | Annotated[RestoreSource, Tag("RestoreSource")],
    # A mapping is a RestoreSource, text a file: errors then speak of the one meant, not of both.
    Discriminator(
        lambda v: "str" if isinstance(v, str) else "RestoreSource" if isinstance(v, (dict, RestoreSource)) else None,
        custom_error_type="restore_source",
        custom_error_message="`restore` is the path of a dump file, or a mapping with one of file, environment or url_secret",
    ),
]


class RestoreSeed(Strict):
    """Restore a PostgreSQL dump (a file, another environment's database, a database named by a
    secret) into a database of the environment, once (docs/seed.md, "restore")."""

    restore: RestoreFrom = Field(
        description="The dump to restore: a file relative to envci.yaml, or {file | environment | url_secret: ...}"
    )
    component: str | None = Field(None, description="Database component restored into, reached by port-forward")
    service: str | None = Field(None, description="Service to port-forward to (default: the component's name)")
    port: int = Field(5432, description="Database port")
    url: str | None = Field(None, description="A database URL to restore into instead of a port-forward (templated)")
    database: str = Field("postgres", description="Database restored into")
    user: str = Field("postgres", description="Database user")
    password: str | None = Field(None, description="Name of a secret in `secrets:` holding the password")
    allow: list[str] = Field(
        default_factory=list,
        description="Sources this step may copy from: env:NAME, postgresql://HOST[:PORT][/DATABASE] (`*` matches any text); "
        "written literally, never templated. A source no entry covers is refused before anything is read; a file needs no entry",
    )
    timeout: Duration = Field("30m", description="How long the restore may take, dump included")

    _v = field_validator("timeout", mode="before")(_duration)

    @property
    def source(self) -> RestoreSource:
        return RestoreSource(file=self.restore) if isinstance(self.restore, str) else self.restore

    @model_validator(mode="after")
    def _a_database(self) -> "RestoreSeed":
        if not (self.component or self.service or self.url):
            raise invalid("needs `component`, `service` or `url` to know which database to restore into", "e.g. `component: db`")
        src = self.source
        if src.environment and not (src.component or src.service or self.component or self.service):
            raise invalid(f"nothing says which database of environment {src.environment} to dump",
                          "give `component:` or `service:` under `restore:` (the step's own are used when it has them)", at="restore")
        return self

    @model_validator(mode="after")
    def _allowed_source(self) -> "RestoreSeed":
        src = self.source
        if src.file:
            _check_allow(None, self.allow, (ENV, PG), copies_none="a dump file is in the repository, reviewed like code")
        elif src.environment:
            _check_allow(env_source(src.environment), self.allow, (ENV, PG))
        else:
            # The URL is a secret's value, known only when the step runs: the seeder checks it then,
            # before it connects. An empty list would refuse every URL, so say so now.
            _check_allow(None, self.allow, (ENV, PG))
            if not self.allow:
                raise invalid("a `url_secret` source needs `allow:` naming the databases its URL may point at",
                              'e.g. allow: ["postgresql://staging-db.internal:5432/shop"]; envci checks the URL against it before it connects',
                              at="allow")
        return self


def _check_allow(source: str | None, allow: list[str], schemes: tuple[str, ...], *, copies_none: str = "") -> None:
    """The load-time half of the allow-list rule (envci.sources): the list is literal and well formed,
    and a source known from envci.yaml (not a secret's value) is on it. The error is about this
    step's `allow`; the loader puts the step's place, `seed[N]`, in front."""
    problems = [f"entry {e!r} {why}" for e in allow if (why := entry_problem(e, schemes))]
    if problems:
        raise invalid("; ".join(problems), "entries look like " + ", ".join(_ALLOW_FORMS[s] for s in schemes), at="allow")
    if copies_none:
        if allow:
            raise invalid(f"`allow` lists sources to copy from, and this step copies from none ({copies_none})",
                          "remove `allow`", at="allow")
        return
    if source is not None and not is_template(source) and not allowed(source, allow):
        message, hint = refusal(source, allow, "this step's `allow:` list")
        raise invalid(message, hint, at="allow")


_ALLOW_FORMS = {ENV: "env:NAME", PG: "postgresql://HOST[:PORT][/DATABASE]", S3: "s3://BUCKET[/PREFIX]"}


class S3Seed(Strict):
    s3: str = Field(description="Local fixtures folder to upload, relative to envci.yaml")
    bucket: str | None = Field(None, description="Bucket name (default: the environment's name)")
    prefix: str = Field("", description="Key prefix")
    copy_from: str | None = Field(None, description="s3://bucket/prefix to copy from instead of a folder")
    endpoint: str | None = Field(None, description="S3-compatible endpoint URL (templated)")
    region: str = Field("us-east-1", description="Region")
    access_key: str | None = Field(None, description="Secret name in `secrets:` for the access key id")
    secret_key: str | None = Field(None, description="Secret name in `secrets:` for the secret access key")
    allow: list[str] = Field(
        default_factory=list,
        description="Buckets `copy_from` may read, as s3://BUCKET[/PREFIX] (`*` matches any text); written literally, never templated. "
        "A `copy_from` no entry covers is refused before anything is read",
    )

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, v: str | None) -> str | None:
        why = check_bucket_name(v) if v and not is_template(v) else None
        if why:
            raise invalid(f"bucket name {v!r} {why}", "leave `bucket` out to use one named after the environment")
        return v

    @field_validator("copy_from")
    @classmethod
    def _copy_from(cls, v: str | None) -> str | None:
        if v and not is_template(v):
            try:
                parse_s3_url(v)
            except ValueError as e:
                raise invalid(str(e), "use the form s3://bucket/prefix") from None
        return v

    @model_validator(mode="after")
    def _key_pair(self) -> "S3Seed":
        if bool(self.access_key) != bool(self.secret_key):
            raise invalid("give both `access_key` and `secret_key`, or neither",
                          "without them the usual AWS credential chain applies", at="secret_key" if self.access_key else "access_key")
        return self

    @model_validator(mode="after")
    def _allowed_source(self) -> "S3Seed":
        source = None
        if self.copy_from:
            source = self.copy_from if is_template(self.copy_from) else s3_source(*parse_s3_url(self.copy_from))
        _check_allow(source, self.allow, (S3,), copies_none="" if self.copy_from else "it uploads a folder")
        return self


class JobSeed(Strict):
    job: str = Field(description="Name of the seed Job")
    image: str | None = Field(None, description="Container image")
    image_from: str | None = Field(None, description="Use the image of this component's first container")
    command: list[str] = Field(default_factory=list, description="Command and arguments")
    env: dict[str, str] = Field(
        default_factory=dict, description="Environment variables (templated); a value that uses a secret is passed from a Secret"
    )
    labels: dict[str, str] = Field(default_factory=dict, description="Extra labels on the Job's pod (e.g. for NetworkPolicies)")
    backoff_limit: int = Field(
        0, ge=0, le=10, description="Retries after a failed attempt (default 0: a seed script may not be safe to run twice)"
    )
    timeout: Duration = Field("5m", description="How long to wait for the Job")

    _v = field_validator("timeout", mode="before")(_duration)

    @field_validator("job")
    @classmethod
    def _job_name(cls, v: str) -> str:
        if not is_template(v) and (not DNS_LABEL.match(v) or len(v) > 63):
            raise invalid(f"{v!r} is not a valid Job name", "a DNS-1123 label: a-z, 0-9 and '-', at most 63 characters, e.g. `migrate`")
        return v

    @model_validator(mode="after")
    def _one_image(self) -> "JobSeed":
        if self.image and self.image_from:
            raise invalid("give `image` or `image_from`, not both",
                          "`image_from: COMPONENT` runs the application's own build; `image` names another image", at="image_from")
        if not self.image and not self.image_from:
            raise invalid("needs `image` or `image_from`", "e.g. `image_from: web` to run the web component's image")
        return self


class HttpSeed(Strict):
    http: str = Field(description="URL (templated), or a path on a component given with `component`")
    component: str | None = Field(None, description="Component whose service is port-forwarded")
    method: str = Field("POST", description="HTTP method")
    files: list[str] = Field(default_factory=list, description="Fixture files sent as request bodies, in order")
    headers: dict[str, str] = Field(default_factory=dict, description="Headers (templated; may use secrets)")
    expect_status: list[int] = Field(default_factory=lambda: [200, 201, 204, 409], description="Accepted statuses")

    @model_validator(mode="after")
    def _a_url(self) -> "HttpSeed":
        if not self.component and not is_template(self.http) and not self.http.startswith(("http://", "https://")):
            raise invalid(f"{self.http!r} is not an http(s):// URL", "give a full URL, or `component:` and a path", at="http")
        return self


class ExecSeed(Strict):
    exec: list[str] = Field(description="Command run in a running pod of `component`")
    component: str = Field(description="Component whose pod runs the command")
    container: str | None = Field(None, description="Container name (default: the first)")
    timeout: Duration = Field("5m", description="How long the command may run")

    _v = field_validator("timeout", mode="before")(_duration)

    @field_validator("exec")
    @classmethod
    def _a_command(cls, v: list[str]) -> list[str]:
        if not v:
            raise invalid("the command is empty", "e.g. exec: [sh, -c, 'psql -f /seed.sql']")
        return v


def _keyed(*keys: str) -> Callable[[Any], str | None]:
    """Pick a union member by which identifying key a step has, so errors speak of that member only."""

    def pick(v: Any) -> str | None:
        if isinstance(v, dict):
            return next((k for k in keys if k in v), None)
        return next((k for k in keys if getattr(v, k, None) is not None), None)

    return pick


SeedStep = Annotated[
    Annotated[SqlSeed, Tag("sql")]
    | Annotated[RestoreSeed, Tag("restore")]
    | Annotated[S3Seed, Tag("s3")]
    | Annotated[JobSeed, Tag("job")]
    | Annotated[HttpSeed, Tag("http")]
    | Annotated[ExecSeed, Tag("exec")],
    Discriminator(
        _keyed("sql", "restore", "s3", "job", "http", "exec"),
        custom_error_type="seed_kind",
        custom_error_message="a seed step needs one of the keys sql, restore, s3, job, http or exec",
    ),
]


def suite_slug(name: str, limit: int = 40) -> str:
    """A suite name as a DNS-1123 label fragment and a safe file name: names its Job and log file,
    so two suites with the same slug would overwrite each other."""
    s = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:limit].rstrip("-")
    return s or "suite"


class CommandSuite(Strict):
    name: str = Field(description="Suite name")
    command: list[str] | str = Field(description="Command run on the CI runner (a string runs in a shell)")
    junit: str | None = Field(None, description="JUnit XML path (glob) the command writes")
    parallel: bool = Field(False, description="May run at the same time as other parallel suites")
    timeout: Duration = Field("30m", description="How long the suite may run")

    _v = field_validator("timeout", mode="before")(_duration)


class SuiteJob(Strict):
    """The container of a `job:` test suite, run as a Kubernetes Job in the environment."""

    image: str = Field(description="Container image")
    command: list[str] | str | None = Field(None, description="Command: a list, or a string run by `sh -c`")
    args: list[str] | None = Field(None, description="Arguments after the image's entrypoint")
    env: dict[str, EnvValue] = Field(
        default_factory=dict, description="Environment variables (templated); a value that uses a secret is passed from a Secret"
    )
    junit: str | None = Field(
        None, description="Absolute path (glob) of the JUnit XML inside the container, printed to the log when the command ends"
    )
    labels: dict[str, str] = Field(default_factory=dict, description="Extra labels on the Job's pod")
    service_account: str | None = Field(None, description="ServiceAccount the pod runs as")
    backoff_limit: int = Field(0, ge=0, description="Retries after the first attempt")

    @field_validator("image")
    @classmethod
    def _image(cls, v: str) -> str:
        if not v.strip():
            raise invalid("`image` is empty", "the container image that runs the tests, e.g. registry.example.com/shop-e2e:1.4")
        return v

    @field_validator("junit")
    @classmethod
    def _absolute(cls, v: str | None) -> str | None:
        if v is not None and not is_template(v) and not v.startswith("/"):
            raise invalid(f"{v!r} is not an absolute path inside the container", "e.g. junit: /reports/junit.xml")
        return v

    @model_validator(mode="after")
    def _junit_needs_command(self) -> "SuiteJob":
        if self.junit and self.args and not self.command:
            raise invalid("`junit` needs `command`", "envci wraps the command so the container prints the file when it ends", at="junit")
        return self


class JobSuite(Strict):
    name: str = Field(description="Suite name")
    job: SuiteJob = Field(description="The container that runs the tests")
    parallel: bool = False
    timeout: Duration = "30m"

    _v = field_validator("timeout", mode="before")(_duration)


class HelmTestSuite(Strict):
    name: str = Field(description="Suite name")
    helm_test: str = Field(description="Component whose release runs `helm test`")
    parallel: bool = False
    timeout: Duration = "10m"

    _v = field_validator("timeout", mode="before")(_duration)


TestSuite = Annotated[
    Annotated[CommandSuite, Tag("command")] | Annotated[JobSuite, Tag("job")] | Annotated[HelmTestSuite, Tag("helm_test")],
    Discriminator(
        _keyed("command", "job", "helm_test"),
        custom_error_type="test_kind",
        custom_error_message="a test suite needs one of the keys command, job or helm_test",
    ),
]


LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")


class Budget(Strict):
    """How many environments may live at once: of this app, of its repository, or of its team.

    `envci provision` counts the live environments in the scope (managed namespaces not being
    deleted, leaving out the one it provisions, which may always be provisioned again) before it
    creates anything, and refuses a new one beyond the limit (exit 2). The cluster's policy
    (ConfigMap `envci-budgets`, installed by the janitor chart) may set budgets too: every budget
    that applies must have room, and where both set one for the same scope the smaller applies."""

    max_environments: int | None = Field(
        None, ge=1, description="Most environments that may live at once in `scope` (none: only the cluster's policy limits them)"
    )
    scope: Literal["app", "repo", "team"] = Field(
        "app", description="What `max_environments` counts: `app` (this app's environments), `repo` (its repository's, every app) "
        "or `team` (its team's)"
    )
    team: str | None = Field(
        None, description="The team the app belongs to, recorded on each environment as the label envci.io/team; "
        "team budgets (here with `scope: team`, or the cluster's policy) count environments by it"
    )
    when_exceeded: Literal["fail", "reap-oldest-expired"] = Field(
        "fail",
        description="`fail`: refuse the new environment (exit 2), listing the oldest ones that count; `reap-oldest-expired`: "
        "first tear down the oldest environments in the scope whose TTL has passed (never a live one), and refuse "
        "only when that cannot make room. Applies to the cluster's budgets too",
    )

    @field_validator("team")
    @classmethod
    def _team(cls, v: str | None) -> str | None:
        if v is not None and not is_template(v) and not LABEL_VALUE.match(v):
            raise invalid(f"{v!r} is not a valid team name", "a label value: letters, digits, '-', '_' and '.', at most 63 characters, e.g. `payments`")
        return v

    @model_validator(mode="after")
    def _team_scope(self) -> "Budget":
        if self.scope == "team" and not self.team:
            raise invalid("`scope: team` needs `team`", "name the team, e.g. `team: payments`", at="team")
        return self


class Spec(Strict):
    """The whole of envci.yaml."""

    name: str = Field(description="Application name: the first part of every environment name")
    ttl: Duration = Field("4h", description="How long an environment lives before the janitor may reap it")
    namespace: NamespaceSettings = Field(default_factory=NamespaceSettings, description="Namespace settings")
    values: dict[str, Any] = Field(default_factory=dict, description="Parameters for templates (`values.x`)")
    secrets: dict[str, SecretRef] = Field(
        default_factory=dict, description="Named secrets, used in templates as `secrets.NAME`; never printed"
    )
    components: list[Component] = Field(default_factory=list, description="What the environment runs")
    seed: list[SeedStep] = Field(default_factory=list, description="Data loading steps, in order")
    test: list[TestSuite] = Field(default_factory=list, description="Test suites")
    budget: Budget | None = Field(None, description="A limit on how many environments live at once (see Budget)")

    _v = field_validator("ttl", mode="before")(_duration)

    @field_validator("name")
    @classmethod
    def _dns(cls, v: str) -> str:
        if not DNS_LABEL.match(v) or len(v) > 30:
            raise ValueError(f"{v!r} is not a DNS-1123 label of at most 30 characters (a-z, 0-9, '-')")
        return v

    @property
    def ttl_delta(self) -> timedelta:
        return parse_duration(self.ttl)

    def component(self, name: str) -> Component:
        for c in self.components:
            if c.name == name:
                return c
        raise KeyError(name)
