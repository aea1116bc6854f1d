"""The wheel is the product: built from this checkout, installed into a virtualenv outside it, and
run from there against PostgreSQL and Redis as an operator deploys it (README, "Deploying").

- The wheel is built from a copy of the checkout (`pip wheel --no-deps`, offline with
  `--no-build-isolation` when this environment's setuptools can build it), so the checkout gets no
  build/ or *.egg-info. It must carry every template, migration and file of the demo page.
- The virtualenv is new and outside the repository; the wheel is installed into it without its
  dependencies. Those come from this test environment, offline, but only the ones the wheel
  declares (with its postgres, redis and sandbox extras) and theirs: a folder of links to exactly
  those distributions is put on the path by a `.pth` file. So `bot`, the templates and the
  migrations come from the wheel, the libraries from the versions the tests use, and an import
  Oodaloo does not declare fails here. The processes run in a folder outside the repository with
  no PYTHONPATH.
- Installed with no extra too: `oodaloo migrate` and `oodaloo serve` run on SQLite without Redis,
  and a setting that calls for a missing extra (REDIS_URL, a PostgreSQL DATABASE_URL, `oodaloo
  demo`'s sandboxes) stops the command with one line saying which extra to install.
- In a fresh PostgreSQL schema: `oodaloo serve` refuses to start ("run `oodaloo migrate`"); two
  `oodaloo migrate` run at once, one migrates and the other finds nothing to do (the advisory
  lock); `oodaloo migrate --check` then says it is up to date.
- The business is linked and connected in the test process (as tests/bot/test_two_processes.py
  sets it up) with its weekly digest due a minute ago; then `oodaloo serve` and `oodaloo worker`
  start from the wheel with Redis: /healthz is 200 and counts the worker, and the worker's digest
  sweep posts the digest to #finance through the local Slack (over real HTTP). Both stop with
  SIGTERM, exit 0 and log no error.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.parser
import importlib.metadata
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import test_two_processes as two_processes
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from redis.asyncio import Redis
from service_env import REDIS_ENV, dedicated_redis_db, required_service_url
from test_crash_restart_worker import digest_due_a_minute_ago, digest_run
from test_two_processes import ERROR_LINE, Served, World

from bot.bootstrap import Oodaloo
from bot.local import BUSINESS_ID, CHANNEL, OWNER, free_socket
from bot.models import DigestRun
from bot.settings import EXTRA_MODULES, load_settings
from qbo_sandbox.seed_names import COMPANY_NAME
from sync import OAuthTokens

pytestmark = [pytest.mark.http, pytest.mark.wheel]

world = two_processes.world

REPOSITORY = Path(__file__).resolve().parents[2]
#: The Redis database of OODALOO_TEST_REDIS_URL's server that only this module uses (flushed).
REDIS_DB = dedicated_redis_db("wheel_install")
STARTUP_SECONDS = 90.0
DIGEST_SECONDS = 90.0
#: What a copy of the checkout leaves out: what an sdist would not carry, and caches.
NOT_BUILT_FROM = shutil.ignore_patterns(
    ".git", ".venv", ".ci", "tests", "bench", "build", "dist", "*.egg-info", "__pycache__",
    ".pytest_cache", ".mypy_cache", ".ruff_cache", ".oodaloo", ".env",
)
#: The extras the processes run with (a production install takes postgres and redis).
EXTRAS = ("postgres", "redis", "sandbox")
#: Oodaloo's settings, by the start of their environment variables: only the test's own reach
#: the processes.
OODALOO_SETTINGS = (
    "SLACK_", "QBO_", "REDIS_", "DATABASE_", "TOKEN_", "EMAIL_", "SMTP_", "OPERATOR_", "PUBLIC_URL",
    "LOG_LEVEL", "WORKER_NICE",
)
#: The checkout's folders the wheel carries as packages of other names (pyproject.toml).
MAPPED = {"templates": "oodaloo_templates", "migrations": "oodaloo_migrations"}
#: Folders of files listed as packages too (the migration scripts, the templates, the demo page's
#: files): listed, setuptools carries them without warning that a package would be left out.
MAPPED_FOLDERS = {
    "oodaloo_migrations.versions", "oodaloo_templates.email", "oodaloo_templates.slack",
    "slack_sandbox.static",
}


def _pyproject() -> dict[str, object]:
    return tomllib.loads((REPOSITORY / "pyproject.toml").read_text(encoding="utf-8"))


def test_the_wheel_lists_every_package_folder_of_the_checkout() -> None:
    """pyproject.toml names its packages (two are mapped from top-level folders): a new package
    folder missing from the list would be missing from the wheel."""
    listed = set(_pyproject()["tool"]["setuptools"]["packages"])  # type: ignore[index]
    on_disk = {
        ".".join(init.parent.relative_to(REPOSITORY).parts)
        for top in ("bot", "sync", "runway", "qbo_sandbox", "slack_sandbox")
        for init in (REPOSITORY / top).rglob("__init__.py")
    }
    assert listed == on_disk | set(MAPPED.values()) | MAPPED_FOLDERS
    mapped = _pyproject()["tool"]["setuptools"]["package-dir"]  # type: ignore[index]
    assert mapped == {package: folder for folder, package in MAPPED.items()}


# --- the wheel, in a virtualenv of its own ------------------------------------------------------------


@dataclass
class Installed:
    venv: Path
    wheel: Path
    #: A folder outside the repository to run the processes in.
    run_in: Path

    @property
    def oodaloo(self) -> str:
        return str(self.venv / "bin" / "oodaloo")

    def environment(self, settings: dict[str, str]) -> dict[str, str]:
        """This environment without PYTHONPATH or any of Oodaloo's settings, plus `settings`."""
        keep = {
            k: v for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "MIGRATE_ON_START")
            and not k.startswith(OODALOO_SETTINGS)
        }  # fmt: skip
        path = f"{self.venv / 'bin'}{os.pathsep}{keep.get('PATH', '')}"
        return {**keep, "PATH": path, "VIRTUAL_ENV": str(self.venv), **settings}


def _run(*args: str, cwd: Path) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _builds_offline() -> bool:
    """Whether this environment's setuptools builds the wheel itself (pyproject.toml's
    build-system), so no build environment has to be downloaded."""
    try:
        version = importlib.metadata.version("setuptools")
    except importlib.metadata.PackageNotFoundError:
        return False
    major, minor = (int(part) for part in version.split(".")[:2])
    return (major, minor) >= (70, 1)


def _build_wheel(where: Path) -> Path:
    source = where / "source"
    shutil.copytree(REPOSITORY, source, ignore=NOT_BUILT_FROM)
    dist = where / "dist"
    offline = ["--no-build-isolation"] if _builds_offline() else []
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--disable-pip-version-check",
         *offline, "--wheel-dir", str(dist), str(source), cwd=where)
    [wheel] = dist.glob("oodaloo-*.whl")
    return wheel


def _carried_files() -> set[str]:
    """The files of the checkout's top-level folders the wheel carries as packages, and the demo
    page's, by their path inside the wheel."""
    wanted = set()
    for folder, package in MAPPED.items():
        for path in (REPOSITORY / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                wanted.add(f"{package}/{path.relative_to(REPOSITORY / folder).as_posix()}")
    for path in (REPOSITORY / "slack_sandbox" / "static").rglob("*"):
        if path.is_file():
            wanted.add(path.relative_to(REPOSITORY).as_posix())
    return wanted


def _requirements(dist: importlib.metadata.Distribution, extras: set[str]) -> list[Requirement]:
    """What `dist` requires, with these of its extras, on this interpreter."""
    found = []
    for line in dist.requires or []:
        requirement = Requirement(line)
        marker = requirement.marker
        if marker is None or any(marker.evaluate({"extra": extra}) for extra in {"", *extras}):
            found.append(requirement)
    return found


def _declared_dependencies(wheel: Path, folder: Path, extras: tuple[str, ...]) -> Path:
    """A folder holding (as links into this environment's site-packages) exactly the
    distributions the wheel declares, with these of its extras, and what they
    declare in turn: a module Oodaloo imports without declaring it is missing there."""
    with zipfile.ZipFile(wheel) as archive:
        [name] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = email.parser.Parser().parsestr(archive.read(name).decode())
    oodaloo = metadata.get_all("Requires-Dist") or []
    wanted = [r for r in map(Requirement, oodaloo) if r.name.lower() != "oodaloo"]
    wanted = [r for r in wanted if r.marker is None or any(r.marker.evaluate({"extra": extra})
                                                           for extra in ("", *extras))]
    folder.mkdir()
    seen: set[tuple[str, frozenset[str]]] = set()
    while wanted:
        requirement = wanted.pop()
        key = (canonicalize_name(requirement.name), frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        dist = importlib.metadata.distribution(requirement.name)
        for path in dist.files or []:
            top = path.parts[0]
            if top in ("..", "__pycache__") or (folder / top).exists():
                continue
            (folder / top).symlink_to(Path(str(dist.locate_file(top))))
        wanted += _requirements(dist, set(requirement.extras))
    return folder


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of the checkout, carrying every file it must."""
    where = tmp_path_factory.mktemp("wheel")
    assert not where.resolve().is_relative_to(REPOSITORY)
    started = time.monotonic()
    built = _build_wheel(where)
    missing = _carried_files() - set(zipfile.ZipFile(built).namelist())
    assert not missing, f"the wheel lacks {sorted(missing)}"
    print(f"wheel built in {time.monotonic() - started:.1f}s: {built.name}")
    return built


def _install(wheel: Path, where: Path, extras: tuple[str, ...]) -> Installed:
    """`wheel` in a new virtualenv in `where`, with the dependencies it declares with `extras`."""
    assert not where.resolve().is_relative_to(REPOSITORY)
    venv = where / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", str(venv), cwd=where)
    python = venv / "bin" / "python"
    _run(sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
         "--quiet", "--disable-pip-version-check", str(wheel), cwd=where)
    inner = Path(_run(str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                      cwd=where).strip())
    deps = _declared_dependencies(wheel, where / "dependencies", extras)
    (inner / "oodaloo_test_dependencies.pth").write_text(f"{deps}\n")
    run_in = where / "run"
    run_in.mkdir()
    return Installed(venv, wheel, run_in)


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The wheel with every extra, as the processes of a deployment run it."""
    return _install(wheel, tmp_path_factory.mktemp("installed"), EXTRAS)


@pytest.fixture(scope="module")
def installed_bare(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The wheel with no extra: one process on SQLite, without Redis."""
    return _install(wheel, tmp_path_factory.mktemp("bare"), ())


def test_the_installed_wheel_runs_from_its_own_files(installed: Installed) -> None:
    # Every module of every package imports, with only the declared dependencies at hand.
    probe = (
        "import importlib, json, pkgutil, sys\n"
        "for top in ('bot', 'sync', 'runway', 'qbo_sandbox', 'slack_sandbox'):\n"
        "    package = importlib.import_module(top)\n"
        "    for module in pkgutil.walk_packages(package.__path__, top + '.'):\n"
        "        importlib.import_module(module.name)\n"
        "import bot, bot.packaged, sync.db, slack_sandbox.page\n"
        "print(json.dumps({'bot': bot.__file__, 'templates': str(bot.packaged.templates_dir()), "
        "'migrations': str(sync.db.MIGRATIONS_DIR), 'static': str(slack_sandbox.page.STATIC_DIR), "
        "'path': sys.path}))\n"
    )
    found = json.loads(_run(str(installed.venv / "bin" / "python"), "-c", probe,
                            cwd=installed.run_in))
    for what in ("bot", "templates", "migrations", "static"):
        assert Path(found[what]).is_relative_to(installed.venv), (what, found[what])
    # Only the dependencies' folder may be inside the checkout (CI keeps its .venv there).
    from_checkout = [
        entry for entry in found["path"]
        if entry and Path(entry).resolve().is_relative_to(REPOSITORY)
        and ".venv" not in Path(entry).parts
    ]  # fmt: skip
    assert not from_checkout, found["path"]
    assert (Path(found["templates"]) / "slack" / "headline.md.j2").is_file()
    assert (Path(found["migrations"]) / "env.py").is_file()
    assert (Path(found["static"]) / "index.html").is_file()


async def test_the_demo_runs_from_the_wheel(installed: Installed) -> None:
    """`oodaloo demo` needs the templates, migrations and the page's files the wheel carries."""
    process = await asyncio.create_subprocess_exec(
        installed.oodaloo, "demo", "--port", "0", "--exit-after", "120", cwd=installed.run_in,
        env=installed.environment({}), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert process.stdout is not None
    seen: list[str] = []
    try:
        async with asyncio.timeout(STARTUP_SECONDS):
            url = None
            while url is None:
                line = (await process.stdout.readline()).decode(errors="replace")
                assert line, "the demo stopped before it was up:\n" + "".join(seen)
                seen.append(line)
                found = re.search(r"Open (http://127\.0\.0\.1:\d+)/", line)
                url = found.group(1) if found else None
        drain = asyncio.create_task(process.stdout.read())
        async with httpx.AsyncClient(timeout=10.0) as client:
            page = await client.get(f"{url}/")
            assert page.status_code == 200 and "/static/" in page.text, page.text[:500]
            for name in ("page.js", "page.css"):
                assert (await client.get(f"{url}/static/{name}")).status_code == 200, name
            assert (await client.get(f"{url}/healthz")).status_code == 200
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 60)
    seen.append((await drain).decode(errors="replace"))
    assert process.returncode == 0, "".join(seen)


# --- no extra: one process on SQLite ------------------------------------------------------------------


def _loopback_url() -> tuple[int, str]:
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    return port, f"http://127.0.0.1:{port}"


async def test_without_extras_the_wheel_migrates_and_serves_on_sqlite(
    installed_bare: Installed, world: World
) -> None:
    """The embedded default needs no extra: `oodaloo migrate` and `oodaloo serve` (Slack and
    QuickBooks the local ones) on SQLite, the shared state in the process, with none of the
    extras' libraries installed."""
    extras_modules = sorted({"hiredis", *(m for ms in EXTRA_MODULES.values() for m in ms)})
    probe = f"import importlib.util as u; print(*[m for m in {extras_modules!r} if u.find_spec(m)])"
    found = _run(str(installed_bare.venv / "bin" / "python"), "-c", probe, cwd=installed_bare.run_in)
    assert found.split() == [], f"installed without extras, yet these import: {found}"

    database = installed_bare.run_in / "embedded" / "oodaloo.db"
    port, url = _loopback_url()
    env = installed_bare.environment(world.settings(f"sqlite+aiosqlite:///{database}", None, url))
    code, output = await _command(installed_bare, env, "migrate")
    assert code == 0 and "Migrated the database" in output, output

    serve = await _start(installed_bare, env, "serve-embedded", "serve", "--host", "127.0.0.1",
                         "--port", str(port), url=url)
    try:
        report = await _healthy(serve, workers=0)
    finally:
        exit_code = await serve.stop()
    assert report["status"] == "ok" and report["database"] == {"ok": True}, report
    assert "not configured" in str(report["redis"]), report
    assert exit_code == 0, serve.output()
    bad = [line for line in serve.output().splitlines() if ERROR_LINE.search(line)]
    assert not bad, serve.output()


@pytest.mark.parametrize(
    ("setting", "command", "extra"),
    [
        ({"REDIS_URL": "redis://127.0.0.1:6379/9"}, "serve", "redis"),
        ({"REDIS_URL": "redis://127.0.0.1:6379/9"}, "worker", "redis"),
        ({"DATABASE_URL": "postgresql+asyncpg://oodaloo@127.0.0.1:5432/oodaloo"}, "migrate", "postgres"),
        ({}, "demo", "sandbox"),
    ],
)
async def test_a_setting_that_needs_a_missing_extra_stops_the_command_with_one_line(
    installed_bare: Installed, setting: dict[str, str], command: str, extra: str
) -> None:
    """Without the extra a setting calls for, the command stops before it starts, with one line
    naming the extra and how to install it (not a traceback)."""
    database = installed_bare.run_in / "refused" / "oodaloo.db"
    env = installed_bare.environment({"DATABASE_URL": f"sqlite+aiosqlite:///{database}", **setting})
    code, output = await _command(installed_bare, env, command)
    assert code == 2, output
    [line] = output.strip().splitlines()
    assert f"the {extra} extra" in line and f"pip install 'oodaloo[{extra}]'" in line, line


# --- PostgreSQL, Redis and the processes --------------------------------------------------------------


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    """OODALOO_TEST_REDIS_URL's server, database REDIS_DB, emptied before and after."""
    base = urlsplit(str(required_service_url(REDIS_ENV, "Redis", "127.0.0.1:6379")))
    url = urlunsplit(base._replace(path=f"/{REDIS_DB}"))
    client = Redis.from_url(url)
    try:
        await client.flushdb()
        yield url
        await client.flushdb()
    finally:
        await client.aclose()


async def _command(installed: Installed, env: dict[str, str], *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        installed.oodaloo, *args, cwd=installed.run_in, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), STARTUP_SECONDS)
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


async def _start(installed: Installed, env: dict[str, str], name: str, *args: str,
                 url: str = "") -> Served:
    log = installed.run_in / f"{name}.log"
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            installed.oodaloo, *args, cwd=installed.run_in, env=env,
            stdout=output, stderr=asyncio.subprocess.STDOUT,
        )
    return Served(name, url, process, log)


@contextlib.asynccontextmanager
async def business_due(world: World, database_url: str) -> AsyncIterator[Oodaloo]:
    """The business linked to #finance, connected to the sandbox's company and synced (as
    test_two_processes sets it up), its weekly digest due a minute ago."""
    settings = load_settings(**{
        name.lower(): value
        for name, value in world.settings(database_url, None, "http://127.0.0.1:3000").items()
    })
    oodaloo = await Oodaloo.start(settings, migrate=False)
    try:
        sandbox, now = world.quickbooks.sandbox, datetime.now(UTC)
        await oodaloo.directory.create(
            BUSINESS_ID, COMPANY_NAME, "America/Los_Angeles", realm_id=world.realm_id,
            slack_team_id=world.slack.sandbox.config.team_id, slack_channel_id=CHANNEL,
            approvers=[OWNER],
        )  # fmt: skip
        await oodaloo.directory.connect(BUSINESS_ID, world.realm_id, OAuthTokens(
            access_token=sandbox.access_token, refresh_token=sandbox.refresh_token,
            expires_at=now + timedelta(hours=1), refresh_expires_at=now + timedelta(days=100),
        ))  # fmt: skip
        await (await oodaloo.services_for(BUSINESS_ID)).mirror.sync()
        await digest_due_a_minute_ago(oodaloo)
        yield oodaloo
    finally:
        await oodaloo.aclose()


async def _healthy(served: Served, workers: int) -> dict[str, object]:
    """/healthz once it is 200 and counts `workers` taking the Slack work."""
    deadline = time.monotonic() + STARTUP_SECONDS
    report: dict[str, object] = {}
    async with httpx.AsyncClient(timeout=5.0) as client:
        while time.monotonic() < deadline:
            served.must_be_running()
            with contextlib.suppress(httpx.TransportError):
                answer = await client.get(f"{served.url}/healthz")
                report = answer.json()
                redis = report.get("redis")
                slack_work = redis.get("slack_work", {}) if isinstance(redis, dict) else {}
                if answer.status_code == 200 and slack_work.get("workers", 0) >= workers:
                    return report
            await asyncio.sleep(0.2)
    raise AssertionError(f"/healthz never healthy with {workers} worker(s): {report}\n{served.output()}")


async def _posted(oodaloo: Oodaloo, *processes: Served) -> DigestRun:
    deadline = time.monotonic() + DIGEST_SECONDS
    while time.monotonic() < deadline:
        for one in processes:
            one.must_be_running()
        run = await digest_run(oodaloo)
        if run is not None and run.posted_at is not None:
            return run
        await asyncio.sleep(0.2)
    logs = "\n".join(f"--- {one.name}\n{one.output()[-6000:]}" for one in processes)
    raise AssertionError(f"no digest posted within {DIGEST_SECONDS}s\n{logs}")


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_the_wheel_migrates_serves_and_works_on_postgresql_and_redis(
    installed: Installed, db_url: str, redis_url: str, world: World
) -> None:
    port, url = _loopback_url()
    env = installed.environment(world.settings(db_url, redis_url, url))

    # --- the schema is `oodaloo migrate`'s to make ---------------------------------------------------
    code, output = await _command(installed, env, "serve", "--host", "127.0.0.1", "--port", str(port))
    assert code == 2 and "run `oodaloo migrate`" in output, (code, output)
    (code_a, out_a), (code_b, out_b) = await asyncio.gather(
        _command(installed, env, "migrate"), _command(installed, env, "migrate")
    )
    assert (code_a, code_b) == (0, 0), (out_a, out_b)
    said = sorted(("Migrated the database" in out, "nothing to do" in out) for out in (out_a, out_b))
    assert said == [(False, True), (True, False)], (out_a, out_b)
    code, output = await _command(installed, env, "migrate", "--check")
    assert code == 0 and "is up to date" in output, output

    # --- serve and worker, from the wheel ------------------------------------------------------------
    async with business_due(world, db_url) as oodaloo:
        serve = await _start(installed, env, "serve", "serve", "--host", "127.0.0.1",
                             "--port", str(port), url=url)
        worker = await _start(installed, env, "worker", "worker")
        try:
            report = await _healthy(serve, workers=1)
            assert report["status"] == "ok" and report["database"] == {"ok": True}, report
            run = await _posted(oodaloo, serve, worker)
        finally:
            exits = [await serve.stop(), await worker.stop()]
        logs = "\n".join(f"--- {one.name}\n{one.output()[-6000:]}" for one in (serve, worker))

        assert run.slack_channel_id == CHANNEL and run.slack_ts is not None, run
        message = world.slack.workspace.message(CHANNEL, run.slack_ts)
        assert message is not None, logs
        assert any(block.get("block_id") == "header" for block in message.blocks), message.blocks
        assert exits == [0, 0], f"exit codes {exits}\n{logs}"
        for one in (serve, worker):
            bad = [line for line in one.output().splitlines() if ERROR_LINE.search(line)]
            assert not bad, f"{one.name} logged errors: {bad[:10]}\n{logs}"
