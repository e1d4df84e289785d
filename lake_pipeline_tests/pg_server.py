"""A real PostgreSQL server on loopback for the test session (no mocks, no docker).

`postgres_server` finds PostgreSQL's binaries (`pg_ctl`/`initdb` on PATH, else the newest
/usr/lib/postgresql/<version>/bin), initialises a cluster in a fresh temp directory, starts it bound to 127.0.0.1 on a
free port (its unix socket stays inside the temp directory), creates the `dagster` database, and stops the server and
removes the directory at teardown. PostgreSQL refuses to run as root, so under euid 0 the cluster belongs to the
`postgres` system user and initdb/pg_ctl run through `runuser -u postgres --`.

Absent binaries skip the tests with the reason (install: `apt-get install -y postgresql`); under CI=true they fail.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from lake_pipeline_tests.requires import unavailable

BIN_ENV = "LAKE_PG_BIN"
USER = "lake"
PASSWORD = "lake-test-password"
DATABASE = "dagster"


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    password: str
    database: str
    base_dir: Path
    startup_seconds: float

    @property
    def env(self) -> dict[str, str]:
        """The DAGSTER_PG_* variables deploy/postgres/dagster.yaml reads."""
        return {"DAGSTER_PG_HOST": self.host, "DAGSTER_PG_PORT": str(self.port), "DAGSTER_PG_USER": self.user,
                "DAGSTER_PG_PASSWORD": self.password, "DAGSTER_PG_DB": self.database}

    def url(self, scheme: str = "postgresql", database: str | None = None) -> str:
        return f"{scheme}://{self.user}:{self.password}@{self.host}:{self.port}/{database or self.database}"

    def connect(self, database: str | None = None):
        import psycopg2

        return psycopg2.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                                dbname=database or self.database)


def find_bin_dir() -> Path | None:
    """Directory holding initdb and pg_ctl: $LAKE_PG_BIN, PATH, or the newest /usr/lib/postgresql/*/bin."""
    if os.environ.get(BIN_ENV):
        return Path(os.environ[BIN_ENV])
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl and Path(initdb).parent == Path(pg_ctl).parent:
        return Path(initdb).parent
    candidates = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")
                  if Path(p).with_name("initdb").exists()]

    def version(p: Path) -> tuple:
        return tuple(int(x) if x.isdigit() else 0 for x in p.parent.name.split("."))

    return max(candidates, key=version) if candidates else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Runner:
    """Runs PostgreSQL commands as the current user, or as `postgres` when we are root."""

    def __init__(self, base: Path):
        self.base = base
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                unavailable("running as root and there is no `postgres` system user to own the test cluster "
                             "(apt-get install -y postgresql creates it)")
            runuser = shutil.which("runuser")
            self.prefix = [runuser, "-u", "postgres", "--"] if runuser else None
            if self.prefix is None:
                unavailable("running as root without `runuser` to drop to the postgres user")
            os.chown(base, pw.pw_uid, pw.pw_gid)

    def run(self, argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
        proc = subprocess.run(self.prefix + argv, cwd=self.base, capture_output=True, text=True, timeout=timeout)
        if proc.returncode:
            raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc


def start_server(bin_dir: Path) -> tuple[PostgresServer, _Runner]:
    t0 = time.perf_counter()
    base = Path(tempfile.mkdtemp(prefix="lake-pg-"))  # under /tmp, reachable by the postgres user (pytest's is 0700)
    runner = _Runner(base)
    data, sock = base / "data", base / "sock"
    pwfile = base / "pwfile"
    pwfile.write_text(PASSWORD + "\n")
    if runner.prefix:
        shutil.chown(pwfile, "postgres")
    runner.run([str(bin_dir / "initdb"), "-D", str(data), "-U", USER, f"--pwfile={pwfile}", "-E", "UTF8",
                "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync"])
    pwfile.unlink()
    sock.mkdir()
    if runner.prefix:
        shutil.chown(sock, "postgres")
    last_error: Exception | None = None
    for _attempt in range(3):  # the port could be taken between probing and binding
        port = _free_port()
        opts = (f"-c listen_addresses=127.0.0.1 -p {port} -k {sock} -c fsync=off -c synchronous_commit=off "
                f"-c full_page_writes=off -c max_connections=100")
        try:
            runner.run([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(base / "postgres.log"), "-o", opts,
                        "-w", "-t", "60", "start"])
            break
        except RuntimeError as exc:
            last_error = exc
    else:
        log = (base / "postgres.log").read_text() if (base / "postgres.log").exists() else ""
        shutil.rmtree(base, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL did not start: {last_error}\n{log}")
    server = PostgresServer("127.0.0.1", port, USER, PASSWORD, DATABASE, base, 0.0)
    conn = server.connect("postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {DATABASE}")
    conn.close()
    server = PostgresServer(**{**server.__dict__, "startup_seconds": time.perf_counter() - t0})
    return server, runner


def stop_server(server: PostgresServer, runner: _Runner, bin_dir: Path) -> None:
    try:
        runner.run([str(bin_dir / "pg_ctl"), "-D", str(server.base_dir / "data"), "-m", "fast", "-w", "stop"])
    finally:
        shutil.rmtree(server.base_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server():
    bin_dir = find_bin_dir()
    if bin_dir is None or not (bin_dir / "initdb").exists():
        unavailable("PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or under "
                     f"/usr/lib/postgresql/*/bin (apt-get install -y postgresql, or set {BIN_ENV})")
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        unavailable("psycopg2 is not installed (pip install -e '.[test]')")
    server, runner = start_server(bin_dir)
    try:
        yield server
    finally:
        stop_server(server, runner, bin_dir)
