"""Real servers for the scale-out tests, started on loopback by the tests themselves.

PostgreSQL (Debian's ``postgresql``: ``initdb`` + ``pg_ctl`` in a temporary folder), Redis
(``redis-server``, nothing saved to disk), Celery workers (``dagster-celery worker start``) and
``dagster dev`` (webserver + daemon). Each is started in its own process group and stopped by
its ``stop()`` (the fixtures call it also when a test fails), so nothing outlives the tests.
"""
from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def missing_servers() -> str | None:
    """Why the servers cannot be started here (a reason to skip), or None."""
    missing = []
    if not (_pg_bin("initdb") and _pg_bin("pg_ctl")):
        missing.append("PostgreSQL (initdb, pg_ctl: apt-get install postgresql)")
    if not shutil.which("redis-server"):
        missing.append("redis-server (apt-get install redis-server)")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            missing.append("a 'postgres' user to run PostgreSQL as (it refuses to run as root)")
    for module in ("dagster_postgres", "dagster_celery", "redis"):
        try:
            __import__(module)
        except ImportError:
            missing.append(f"the Python package {module} (pip install -e '.[cluster]')")
    return "not installed: " + "; ".join(missing) if missing else None


def _default_signals() -> None:
    """In the child: SIGINT and SIGTERM act normally even if the tests run with them ignored."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class Proc:
    """A command in its own process group, its output in ``log_path``; ``stop()`` ends the whole group."""

    def __init__(self, args: list[str], log_path: Path, *, env: dict | None = None, cwd: Path = REPO):
        self.log_path = Path(log_path)
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True, preexec_fn=_default_signals)

    def log_tail(self, n: int = 60) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, *, grace_s: float = 20) -> None:
        """SIGINT, then SIGTERM, then SIGKILL to the group, each with a bounded wait."""
        for sig, wait_s in ((signal.SIGINT, grace_s), (signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            if self._group_gone(wait_s):
                break
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()

    def _group_gone(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.proc.poll()
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.2)
        return False


def _wait_for_port(port: int, proc: Proc | None, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{what} exited:\n{proc.log_tail()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout_s} s")


class Postgres:
    """A throw-away PostgreSQL cluster on 127.0.0.1:<free port> with a database ``dagster``.

    Run as the ``postgres`` user when the tests run as root (PostgreSQL refuses root). Trust
    authentication on loopback: for tests only.
    """

    user, db, password = "dagster", "dagster", "unused-with-trust-auth"

    def __init__(self):
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="ace-pg-"))
        self.data = self.folder / "data"
        self._as = []
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self.started = False

    def _run(self, *args: str) -> None:
        done = subprocess.run([*self._as, *args], capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")

    def start(self) -> "Postgres":
        self._run(_pg_bin("initdb"), "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8",
                  "--no-sync")
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.folder} "
                   f"-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "server.log"), "-o", options,
                  "-w", "-t", "60", "start")
        self.started = True
        self._run(_pg_bin("createdb") or "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user,
                  self.db)
        return self

    def env(self) -> dict[str, str]:
        """The DAGSTER_PG_* variables the deploy profiles read."""
        return {"DAGSTER_PG_USERNAME": self.user, "DAGSTER_PG_PASSWORD": self.password,
                "DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": str(self.port), "DAGSTER_PG_DB": self.db}

    def query(self, sql: str, params=()) -> list[tuple]:
        import psycopg2

        with psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user, dbname=self.db) as conn:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall()

    def stop(self) -> None:
        try:
            if self.started:
                self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "-t", "30", "stop")
        except (RuntimeError, subprocess.TimeoutExpired):
            pid_file = self.data / "postmaster.pid"
            if pid_file.exists():
                try:
                    os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
        finally:
            self.started = False
            shutil.rmtree(self.folder, ignore_errors=True)


class Redis:
    """redis-server on 127.0.0.1:<free port>, nothing persisted."""

    def __init__(self, log_path: Path):
        self.port = free_port()
        self.proc = Proc(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no", "--daemonize", "no"], log_path, cwd=log_path.parent)
        _wait_for_port(self.port, self.proc, 30, "redis-server")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.proc.stop(grace_s=5)


def start_postgres_and_redis(root: Path, started: list) -> tuple["Postgres", "Redis"]:
    """PostgreSQL and Redis on loopback, each appended to ``started`` as it comes up (the caller stops them)."""
    pg = Postgres()
    started.append(pg)
    pg.start()
    redis = Redis(root / "redis.log")
    started.append(redis)
    return pg, redis


def set_pool_limit(env: dict, pool: str, limit: int) -> None:
    """``dagster instance concurrency set POOL LIMIT`` on the instance of ``env``'s DAGSTER_HOME.

    Done once before the first runs on a new PostgreSQL database: runs that start together would
    otherwise each create the pool's row from the profile's default and all but one fail
    (dagster-io/dagster#33552, Dagster 1.13).
    """
    done = subprocess.run([str(BIN / "dagster"), "instance", "concurrency", "set", pool, str(limit)], env=env,
                          capture_output=True, text=True, timeout=120)
    if done.returncode:
        raise RuntimeError(f"setting pool {pool} failed:\n{done.stdout}\n{done.stderr}")


def celery_worker(name: str, env: dict, log_path: Path, *, concurrency: int = 1) -> Proc:
    """A dagster-celery worker with ``concurrency`` pool processes, configured by deploy/celery-worker.yaml."""
    env = {**env, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"}
    return Proc([str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app",
                 "-y", str(REPO / "deploy" / "celery-worker.yaml"), "-n", name, "--",
                 f"--concurrency={concurrency}"], log_path, env=env)


def wait_for_workers(broker: str, n: int, workers: list[Proc], timeout_s: float = 90) -> None:
    """Until ``n`` workers answer a ping on ``broker``."""
    from celery import Celery

    app = Celery("ace-test-ping", broker=broker, backend=broker)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            for w in workers:
                if not w.alive():
                    raise RuntimeError(f"a celery worker exited:\n{w.log_tail()}")
            if len(app.control.ping(timeout=1.0) or []) >= n:
                return
            time.sleep(0.5)
    finally:
        app.close()
    raise RuntimeError(f"{n} celery workers did not answer within {timeout_s} s:\n" +
                       "\n".join(w.log_tail(20) for w in workers))


class DagsterDev(Proc):
    """``dagster dev`` (webserver, daemon, code server) on 127.0.0.1:<free port>."""

    def __init__(self, env: dict, log_path: Path):
        self.port = free_port()
        super().__init__([str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p",
                          str(self.port)], log_path, env=env)

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/graphql",
                                     data=json.dumps({"query": query, "variables": variables or {}}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            body = json.loads(resp.read())
        if body.get("errors"):
            raise AssertionError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def wait_until_ready(self, timeout_s: float = 240,
                         daemons: tuple[str, ...] = ("BACKFILL", "QUEUED_RUN_COORDINATOR")) -> None:
        """Until the code location is loaded and ``daemons`` are healthy; records ``repository`` and
        ``location`` (what GraphQL calls on the code need)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise AssertionError(f"dagster dev exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                data = self.graphql("""{ repositoriesOrError { __typename ... on RepositoryConnection {
                                          nodes { name location { name } } } }
                                        instance { daemonHealth { allDaemonStatuses { daemonType healthy } } } }""")
            except (urllib.error.URLError, ConnectionError, TimeoutError, AssertionError):
                time.sleep(1)
                continue
            if data["repositoriesOrError"]["__typename"] == "PythonError" or self._load_error():
                raise AssertionError(f"the code location did not load:\n{self._load_error()}\n{self.log_tail()}")
            repos = data["repositoriesOrError"].get("nodes") or []
            healthy = {d["daemonType"] for d in data["instance"]["daemonHealth"]["allDaemonStatuses"] if d["healthy"]}
            if repos and set(daemons) <= healthy:
                self.repository, self.location = repos[0]["name"], repos[0]["location"]["name"]
                return
            time.sleep(1)
        raise AssertionError(f"dagster dev not ready after {timeout_s} s:\n{self.log_tail()}")

    def _load_error(self) -> str:
        data = self.graphql("""{ workspaceOrError { ... on Workspace { locationEntries { name
                                 locationOrLoadError { __typename ... on PythonError { message } } } } } }""")
        entries = (data.get("workspaceOrError") or {}).get("locationEntries") or []
        return "\n".join(f"{e['name']}: {e['locationOrLoadError']['message']}" for e in entries
                         if (e.get("locationOrLoadError") or {}).get("__typename") == "PythonError")

    def launch_backfill(self, lines, asset_keys, *, title: str, tags: dict | None = None) -> str:
        params = {"partitionNames": list(lines), "assetSelection": [{"path": k.path} for k in asset_keys],
                  "title": title, "tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]}
        data = self.graphql(
            """mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
                 __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message }
                 ... on InvalidSubsetError { message } ... on PartitionSetNotFoundError { message } } }""",
            {"p": params})
        launched = data["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        return launched["backfillId"]

    def backfill_status(self, backfill_id: str) -> str:
        d = self.graphql("""query($id: String!) { partitionBackfillOrError(backfillId: $id) {
                              ... on PartitionBackfill { status } } }""", {"id": backfill_id})
        return d["partitionBackfillOrError"]["status"]


def cluster_env(pg: "Postgres", redis: "Redis", *, home: Path, demo, storage: Path, **extra: str) -> dict:
    """The environment of a Dagster instance on ``pg`` whose runs execute on Celery workers through ``redis``,
    for ``demo``'s project, outputs under ``storage`` (the raw-data sensor left at its default)."""
    env = {**os.environ, **pg.env(), "DAGSTER_HOME": str(home), "ACE_PROJECT_PATH": str(demo.project_path),
           "ACE_DATA_PATH": str(demo.data_path), "ACE_STORAGE_ROOT": str(storage),
           "ACE_EXECUTOR": "celery", "ACE_CELERY_BROKER": redis.url, "ACE_CELERY_BACKEND": redis.url,
           "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore::UserWarning", **extra}
    env.pop("ACE_RAW_DATA_SENSOR", None)
    return env


def wait_for(predicate, *, timeout_s: float, every_s: float = 1.0, what: str, logs=()):
    """Until ``predicate()`` is truthy (returned); on time-out fail with the tails of ``logs``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}\n" +
                         "\n".join(p.log_tail(40) for p in logs))
