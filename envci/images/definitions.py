"""The project's images, as data: which layers each is made of, its runtime config, which archive holds it.

Image names are a contract: the local cluster, the demo's charts and the tests refer to them verbatim.
Every image is built offline (see `build`): nothing here names a registry to pull from.

The Debian-based images the local cluster runs (postgres, demo-api) start from ONE base layer, so containerd
stores it once however many of them a node runs; they travel in one archive (`bookworm.tar`) that holds the
base once. The envci image is the one users pull (the `Containerfile` at the repository's root builds it for
registries), so it has a base of its own with nothing but Python and a shell, and envci's dependencies
without the parts envci never loads: under 250 MB with helm and kubectl, which alone are half of it. It
travels in `envci.tar`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from envci import __version__
from envci.images.archive import ImageConfig

DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
PYTHON_VERSION = "3.11"
"""Debian bookworm's python3; wheels for the envci image are chosen for it."""

APP_UID = 10001
"""The non-root user (`app`) that demo-api and envci run as; created in the base layer."""

BASE_PACKAGES = ("python3", "python3-psycopg", "postgresql-15", "ca-certificates", "netbase")
"""What every Debian-based image shares. `netbase` gives /etc/services and /etc/protocols to resolvers."""

BASE_EXCLUDES = (
    "usr/share/doc/*",
    "usr/share/man/*",
    "usr/share/info/*",
    "usr/share/locale/*",
    "usr/share/lintian/*",
)
"""dpkg path excludes: documentation and translations nobody reads inside a container."""

BASE_KEEP = ("usr/share/doc/*/copyright",)
"""dpkg path includes that win over the excludes: licences stay with the software."""

BASE_REMOVE = (
    # postgres loads its JIT provider on demand and runs without it (the image sets jit=off);
    # LLVM and z3, pulled in only for it, are more than half the base.
    "usr/lib/x86_64-linux-gnu/libLLVM-*",
    "usr/lib/x86_64-linux-gnu/libz3.so*",
    "usr/lib/postgresql/15/lib/bitcode",
    "usr/lib/postgresql/15/lib/llvmjit*",
    # The cluster the package creates at install time: the entrypoint initialises its own.
    "var/lib/postgresql/15",
    "etc/postgresql/15",
    # Locale sources: C.UTF-8 is built into glibc and is what the images use.
    "usr/share/i18n",
    # The self-signed "snakeoil" key ssl-cert generates at install time: a private key baked into an
    # image is shared by everyone who pulls it, and a random one makes the layer differ on every build.
    "etc/ssl/private/ssl-cert-snakeoil.key",
    "etc/ssl/certs/ssl-cert-snakeoil.pem",
    # Install-time logs and caches: they hold timestamps and are of no use at run time.
    "var/log/*",
    "var/cache/debconf/*-old",
    "var/lib/dpkg/*-old",
    "var/cache/ldconfig/aux-cache",
)
"""Paths (globs, relative to the root) deleted after installation."""

PYTHON_BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates", "netbase")
"""The envci image's base. `python3-venv` lets a job in the image still pip-install another envci into a
virtualenv (what the CI wrappers do when asked for a different version than the one the image holds)."""

PYTHON_BASE_VARIANT = "essential"
"""mmdebstrap's package set under `PYTHON_BASE_PACKAGES`: Debian's Essential set, without apt. The image runs
as a non-root user, so apt could not install anything in it anyway; apt and what only it needs (GnuTLS,
libstdc++, gpgv, passwd...) were 18 MB."""

PYTHON_BASE_PURGE = (
    (
        "util-linux", "util-linux-extra", "bsdutils", "libblkid1", "libmount1", "libsmartcols1", "libudev1",
        "libsystemd0", "libgcrypt20", "libgpg-error0", "liblz4-1",
        "login", "libpam0g", "libpam-modules", "libpam-modules-bin", "libpam-runtime", "libaudit1", "libaudit-common",
        "libcap-ng0", "libcap2",
    ),
    ("init-system-helpers", "debconf"),
    ("perl-base",),
)
"""Essential packages that nothing in the envci image runs, purged after installation (dpkg
--force-remove-essential --force-depends), one group after the other: the first group's removal scripts call
update-rc.d and debconf, and debconf is perl. What goes: disk, mount and login tools (util-linux, login and
PAM) with the libraries only they link, and perl with debconf, which only package installation uses
(ca-certificates depends on debconf for its install-time questions). What a CI job's script may call stays:
dash, bash, coreutils, grep, sed, mawk, findutils, diffutils, tar, gzip, hostname. dpkg and its database
stay, so image scanners still see what is installed (and do not list what was purged). 20 MB."""

PYTHON_BASE_REMOVE = (
    "usr/share/i18n",
    "var/log/*",
    "var/cache/debconf",
    "var/lib/dpkg/*-old",
    "var/cache/ldconfig/aux-cache",
    # glibc's iconv modules (8 MB): Python decodes text with its own codecs, and glibc converts UTF-8 and
    # ASCII (all that C.UTF-8 uses) without them.
    "usr/lib/x86_64-linux-gnu/gconv",
    # Python's own test suite and pydoc's topic texts (the text of `help("if")`).
    f"usr/lib/python{PYTHON_VERSION}/test",
    f"usr/lib/python{PYTHON_VERSION}/lib-dynload/_test*",
    f"usr/lib/python{PYTHON_VERSION}/pydoc_data",
)
"""Paths (globs) deleted from the envci image's base after the purge: what `BASE_REMOVE` deletes that this
base has too (it has no postgres, LLVM or snakeoil key), debconf's cache now that debconf is gone, and
parts of packages that stay which nothing runs."""

PYTHON_BASE_BYTECODE = ("usr/lib/python3", f"usr/lib/python{PYTHON_VERSION}")
"""Where Debian compiled the standard library at install time; its `__pycache__` directories are deleted
(13 MB). The image sets PYTHONDONTWRITEBYTECODE and runs as a user who could not write them anyway, so each
process compiles what it imports: about 0.2 s more at start-up, on top of envci's own dependencies, which
were never precompiled."""

ENVCI_DROPPED_DISTRIBUTIONS = (
    "aiohttp", "aiohttp-retry", "aiohappyeyeballs", "aiosignal", "attrs", "frozenlist", "multidict", "propcache", "yarl",
)
"""Distributions pip installs for envci that envci never imports: the kubernetes client requires aiohttp for
its asyncio half (`kubernetes.aio`, removed below), and these are aiohttp and what only it requires (11 MB).
The build fails if anything left requires one of them, except kubernetes itself. `pip check` in the image
names them as missing; a virtualenv made there that needs them installs them."""

ENVCI_DROPPED_FOR = ("kubernetes",)
"""The distributions that may still require a dropped one: they require it for a part removed with it."""

ENVCI_SITE_REMOVE = ("kubernetes/aio", "*/tests")
"""Paths (globs, relative to envci's site-packages) removed: the kubernetes client's asyncio copy (40 MB;
envci uses the synchronous client), and test suites shipped inside packages."""

AWS_SERVICES = ("s3", "sts", "sso", "sso-oidc", "signin")
"""The AWS services whose models botocore and boto3 keep; the other 400-odd are deleted (21 MB). envci
makes S3 clients only (envci/buckets.py). boto3's default credential chain makes clients of its own: STS
(assumed roles, web identity), SSO and SSO-OIDC (`aws sso login` profiles), and sign-in (`aws login`
profiles). The data files at the top of botocore/data (endpoints, partitions, retry and default
configuration) all stay."""

AWS_MODEL_DIRS = ("botocore/data", "boto3/data")
"""Where botocore and boto3 keep one directory of models per service."""

MERGED_USR_HOOK = "/usr/share/mmdebstrap/hooks/merged-usr"
"""mmdebstrap's hook that lays out the merged /usr itself. Without it apt satisfies init-system-helpers'
`usrmerge | usr-is-merged` with usrmerge, which pulls in perl: 45 MB nothing in the envci image runs.
(The shared base keeps perl either way: postgresql-common needs it.)"""

GITHUB_STEP = "usr/local/share/envci/envci_step.py"
"""Where the envci image keeps `actions/_lib/envci_step.py`, the script the GitHub actions run, so the
container action (`actions/docker`) gives the same outputs, annotations and masking as the others."""

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class ImageDef:
    """One image: its name, its layers by id (bottom-up, see `build.LAYER_BUILDERS`), its config, its archive."""

    name: str
    layers: tuple[str, ...]
    config: ImageConfig
    archive: str
    """File stem of the archive that holds it; images sharing a base share an archive."""
    needs: tuple[str, ...] = field(default=())
    """Binaries from the local cluster's bin dir that go into it."""


IMAGES: tuple[ImageDef, ...] = (
    ImageDef(
        "envci.local/pause:3.10",
        ("pause",),
        ImageConfig(entrypoint=("/pause",), user="65535:65535"),
        archive="pause",
    ),
    ImageDef(
        "envci.local/busybox:1",
        ("busybox",),
        ImageConfig(cmd=("sh",), env={"PATH": PATH}),
        archive="busybox",
    ),
    ImageDef(
        "envci.local/coredns:1.15.0",
        ("coredns",),
        ImageConfig(entrypoint=("/coredns",), exposed_ports=("53/tcp", "53/udp")),
        archive="coredns",
        needs=("coredns",),
    ),
    ImageDef(
        "envci.local/postgres:15",
        ("debian-base", "postgres"),
        ImageConfig(
            entrypoint=("/usr/local/bin/postgres-entrypoint",),
            env={"PATH": f"/usr/lib/postgresql/15/bin:{PATH}", "PGDATA": "/var/lib/postgresql/data", "LANG": "C.UTF-8"},
            exposed_ports=("5432/tcp",),
        ),
        archive="bookworm",
    ),
    ImageDef(
        "envci.local/demo-api:dev",
        ("debian-base", "demo-api"),
        ImageConfig(
            cmd=("python3", "/app/api.py"),
            env={"PATH": PATH, "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"},
            user=f"{APP_UID}:{APP_UID}",
            working_dir="/app",
            exposed_ports=("8080/tcp",),
        ),
        archive="bookworm",
    ),
    ImageDef(
        f"envci.local/envci:{__version__}",
        ("python-base", "kube-tools", "envci"),
        ImageConfig(
            entrypoint=("envci",),
            cmd=("--help",),
            env={"PATH": PATH, "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1", "HOME": "/home/app"},
            user=f"{APP_UID}:{APP_UID}",
            working_dir="/home/app",
        ),
        archive="envci",
        needs=("helm", "kubectl"),
    ),
)


def archives() -> dict[str, list[ImageDef]]:
    """Archive stem -> its images, in definition order."""
    out: dict[str, list[ImageDef]] = {}
    for image in IMAGES:
        out.setdefault(image.archive, []).append(image)
    return out


def image_named(name: str) -> ImageDef:
    for image in IMAGES:
        if image.name == name:
            return image
    raise KeyError(f"no image {name!r}; the project builds {', '.join(i.name for i in IMAGES)}")
