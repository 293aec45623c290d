"""What the forge and the package repository hold: repositories with their histories and files,
a Debian mirror, a Python package index.

Used by :mod:`~.content` (the sites' files and the forge's routes), by the package-manager and
git-client traffic, and by the AI crawler (which asks for real commits and files).  Standard
library only.  Fixed data, the same for every seed: commit hashes are SHA-1 of the repository
and the commit's index, so a crawler's "random" commit is a commit the forge has.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from functools import cache

from .core import mix, name_hash
from .sites import Route


@dataclass(frozen=True)
class Repo:
    slug: str
    commits: tuple[str, ...]
    """Commit hashes, newest first."""
    paths: tuple[str, ...]
    tags: tuple[str, ...]
    feed: bool = False


def _commits(slug: str, n: int) -> tuple[str, ...]:
    return tuple(hashlib.sha1(f"{slug}:{i}".encode()).hexdigest() for i in range(n))


def _tree(*groups: tuple[str, str]) -> tuple[str, ...]:
    return tuple(f"{d}/{n}".lstrip("/") for d, names in groups for n in names.split())


REPOS = (
    Repo(
        "alice/project",
        _commits("alice/project", 420),
        _tree(
            ("", "README.md LICENSE Makefile configure.ac .gitignore CHANGELOG.md"),
            ("src", "main.c util.c config.c parser.c lexer.c hash.c list.c net.c log.c io.c"),
            ("src", "server.c client.c buffer.c event.c timer.c signal.c"),
            ("include", "project.h util.h config.h parser.h hash.h net.h log.h"),
            ("tests", "test_main.c test_util.c test_parser.c test_hash.c run.sh"),
            ("docs", "index.md install.md usage.md design.md"),
            (".github/workflows", "ci.yml release.yml"),
        ),
        ("v0.9.0", "v1.0.0", "v1.1.0", "v1.2.0"),
        feed=True,
    ),
    Repo(
        "alice/dotfiles",
        _commits("alice/dotfiles", 160),
        _tree(
            ("", ".bashrc .vimrc .gitconfig .tmux.conf .zshrc README.md install.sh"),
            (".config/nvim", "init.lua lazy-lock.json"),
            (".config/nvim/lua", "options.lua keymaps.lua plugins.lua lsp.lua"),
            (".config/alacritty", "alacritty.toml"),
            ("bin", "backup sync-notes git-prune"),
        ),
        (),
    ),
    Repo(
        "ops/opsconsole",
        _commits("ops/opsconsole", 1350),
        _tree(
            ("", "README.md pyproject.toml LICENSE BENCHMARKS.md"),
            ("opsconsole", "__init__.py __main__.py config.py durations.py errors.py fleet.py"),
            ("opsconsole/cli", "__init__.py act.py audit.py check.py demo.py lab.py stats.py"),
            ("opsconsole/controls", "apply.py audit.py render.py state.py validate.py"),
            ("opsconsole/logs", "follow.py history.py logformat.py parse.py tailstream.py"),
            ("opsconsole/stats", "fast.py sketch.py snapshot.py traffic.py _fastcount.c"),
            ("opsconsole/lab", "lab.py model.py nginx.py population.py sshd.py traffic.py"),
            ("opsconsole/ui", "app.py console.tcss rows.py screens.py"),
            ("tests", "conftest.py test_config.py test_parse.py test_stats.py test_lab.py"),
            ("bench", "genlog.py parse_bench.py latency_bench.py"),
        ),
        ("v0.1.0", "v0.2.0", "v0.2.1"),
        feed=True,
    ),
    Repo(
        "infra/ansible-roles",
        _commits("infra/ansible-roles", 780),
        _tree(
            ("", "README.md site.yml inventory.ini ansible.cfg requirements.yml"),
            *(
                (f"roles/{role}/{part}", "main.yml")
                for role in ("nginx", "postgres", "sshd", "users", "backup", "firewall")
                for part in ("tasks", "handlers", "defaults", "meta")
            ),
            ("roles/nginx/templates", "nginx.conf.j2 site.conf.j2"),
            ("roles/postgres/templates", "postgresql.conf.j2 pg_hba.conf.j2"),
        ),
        ("2025.1", "2025.2"),
    ),
)
REPO_BY_SLUG = {r.slug: r for r in REPOS}

_SLUGS = "|".join(r.slug for r in REPOS)
_H40 = "[0-9a-f]{40}"
GIT_ROUTES = (
    Route(rf"^/({_SLUGS})/commit/{_H40}$", "commit"),
    Route(rf"^/({_SLUGS})/commit/{_H40}\.(diff|patch)$", "diff"),
    Route(rf"^/({_SLUGS})/src/(commit/{_H40}|branch/main|tag/[A-Za-z0-9.]+)(/.*)?$", "tree"),
    Route(rf"^/({_SLUGS})/blame/(commit/{_H40}|branch/main)/.+$", "blame"),
    Route(rf"^/({_SLUGS})/raw/(commit/{_H40}|branch/main)/.+$", "raw"),
    Route(rf"^/({_SLUGS})/commits/(commit/{_H40}|branch/main)(/.*)?$", "log"),
    Route(rf"^/({_SLUGS})/compare/{_H40}\.\.\.{_H40}$", "compare"),
    Route(rf"^/({_SLUGS})\.git/git-upload-pack$", "upload-pack"),
)
"""The forge's dynamic views: a real forge renders them from the repository; the lab answers
``return 200`` for the repositories it hosts (the generator only asks for real commits)."""

DEB_SOURCES = (
    "openssl:libssl3,openssl curl:curl,libcurl4 nginx:nginx,nginx-common git:git,git-man:all "
    "ca-certificates:ca-certificates:all tzdata:tzdata:all openssh:openssh-client,openssh-server "
    "systemd:libsystemd0,libudev1,systemd glibc:libc6,libc-bin zlib:zlib1g gnutls28:libgnutls30 "
    "krb5:libkrb5-3,libgssapi-krb5-2 libxml2:libxml2 sqlite3:libsqlite3-0 perl:perl-base bash:bash "
    "coreutils:coreutils tar:tar gzip:gzip xz-utils:liblzma5,xz-utils vim:vim,vim-common "
    "postgresql-15:postgresql-15,postgresql-client-15 redis:redis-server,redis-tools "
    "python3.11:python3.11,libpython3.11-minimal,python3.11-minimal gcc-12:gcc-12,cpp-12 "
    "libpng1.6:libpng16-16 freetype:libfreetype6 expat:libexpat1 pcre2:libpcre2-8-0 "
    "ncurses:libncursesw6,ncurses-base:all icu:libicu72 libzstd:libzstd1 lz4:liblz4-1 "
    "util-linux:mount,libblkid1,util-linux procps:procps iproute2:iproute2 wget:wget rsync:rsync "
    "sudo:sudo gnupg2:gnupg,gpgv apt:apt,libapt-pkg6.0 dpkg:dpkg pam:libpam0g,libpam-modules "
    "shadow:passwd,login unzip:unzip jq:jq,libjq1 tmux:tmux libevent:libevent-2.1-7 less:less "
    "htop:htop linux-signed-amd64:linux-image-6.1.0-28-amd64 intel-microcode:intel-microcode "
    "python-urllib3:python3-urllib3:all python-requests:python3-requests:all"
)
DEB_SUITES = ("bookworm", "bookworm-updates", "trixie", "trixie-updates")
SECURITY_SUITES = ("bookworm-security", "trixie-security")
DEB_COMPONENTS = ("main", "non-free-firmware")
PYPI = [
    "requests",
    "urllib3",
    "certifi",
    "charset-normalizer",
    "idna",
    "numpy",
    "pandas",
    "python-dateutil",
    "pytz",
    "six",
    "setuptools",
    "wheel",
    "pip",
    "packaging",
    "pyyaml",
    "jinja2",
    "markupsafe",
    "click",
    "flask",
    "werkzeug",
    "django",
    "sqlalchemy",
    "psycopg2-binary",
    "boto3",
    "botocore",
    "s3transfer",
    "jmespath",
    "attrs",
    "pydantic",
    "pydantic-core",
    "typing-extensions",
    "fastapi",
    "starlette",
    "uvicorn",
    "h11",
    "anyio",
    "sniffio",
    "httpx",
    "httpcore",
    "pytest",
    "pluggy",
    "iniconfig",
    "coverage",
    "mypy",
    "ruff",
    "black",
    "textual",
    "rich",
    "asyncssh",
    "cryptography",
    "cffi",
    "psutil",
    "tomli-w",
    "opsconsole",
]
_BINARY = {"numpy", "pandas", "pyyaml", "markupsafe", "psycopg2-binary", "pydantic-core"}
_BINARY |= {"mypy", "ruff", "cryptography", "cffi", "psutil", "charset-normalizer"}


@dataclass(frozen=True)
class Debs:
    """The Debian mirror under ``/debian/`` (and ``/debian-security/``)."""

    packages: tuple[str, ...]
    """Pool paths of every .deb."""
    by_hash: dict[str, tuple[str, ...]]
    """Suite → its index files (``by-hash/SHA256/…`` of each component and architecture)."""


def _version(name: str) -> str:
    h = mix(name_hash(name))
    return f"{1 + h % 9}.{(h >> 8) % 40}.{(h >> 16) % 12}-{1 + (h >> 24) % 6}+deb12u{(h >> 28) % 5}"


@cache
def debian() -> Debs:
    packages = []
    for item in DEB_SOURCES.split():
        src, binaries, *arch_all = item.split(":")
        prefix = src[:4] if src.startswith("lib") else src[0]
        for pkg in binaries.split(","):
            archs = ("all",) if arch_all else ("amd64", "arm64")
            for arch in archs:
                packages.append(
                    f"/debian/pool/main/{prefix}/{src}/{pkg}_{_version(pkg)}_{arch}.deb"
                )
    by_hash = {}
    for suite in (*DEB_SUITES, *SECURITY_SUITES):
        root = "/debian-security" if suite in SECURITY_SUITES else "/debian"
        by_hash[suite] = tuple(
            f"{root}/dists/{suite}/{comp}/binary-{arch}/by-hash/SHA256/"
            + hashlib.sha256(f"{suite}/{comp}/{arch}".encode()).hexdigest()
            for comp in DEB_COMPONENTS
            for arch in ("amd64", "arm64")
        )
    return Debs(tuple(packages), by_hash)


def release_files(suite: str) -> tuple[str, ...]:
    root = "/debian-security" if suite in SECURITY_SUITES else "/debian"
    return tuple(f"{root}/dists/{suite}/{f}" for f in ("InRelease", "Release", "Release.gpg"))


@cache
def wheels() -> dict[str, tuple[str, ...]]:
    """Package name → its wheel URLs on this index (newest last)."""
    out = {}
    for name in PYPI:
        files = []
        for i in range(3):
            h = hashlib.sha256(f"{name}:{i}".encode()).hexdigest()
            ver = f"{1 + i + mix(name_hash(name)) % 3}.{(i * 7 + len(name)) % 20}.{i}"
            dist = name.replace("-", "_")
            tag = "cp312-cp312-manylinux_2_17_x86_64" if name in _BINARY else "py3-none-any"
            files.append(f"/packages/{h[:2]}/{h[2:4]}/{h[4:64]}/{dist}-{ver}-{tag}.whl")
        out[name] = tuple(files)
    return out


VIEWS = ("commit", "diff", "tree", "blame", "raw", "log", "compare")


def repo_view(rng: random.Random, view: str) -> str:
    """A valid, expensive view of a random commit and file of one of the forge's repositories."""
    repo = rng.choices(REPOS, [len(r.commits) ** 0.7 for r in REPOS])[0]
    s, h, path = repo.slug, rng.choice(repo.commits), rng.choice(repo.paths)
    if view == "commit":
        return f"/{s}/commit/{h}"
    if view == "diff":
        return f"/{s}/commit/{h}.{rng.choice(('diff', 'patch'))}"
    if view == "tree":
        folder = path.rsplit("/", 1)[0] if "/" in path and rng.random() < 0.4 else path
        return f"/{s}/src/commit/{h}/{folder}" if rng.random() < 0.9 else f"/{s}/src/commit/{h}"
    if view in ("blame", "raw"):
        return f"/{s}/{view}/commit/{h}/{path}"
    if view == "log":
        return f"/{s}/commits/commit/{h}/{path}"
    return f"/{s}/compare/{h}...{rng.choice(repo.commits)}"
