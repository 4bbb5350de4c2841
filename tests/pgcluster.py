"""A throwaway PostgreSQL cluster for tests.

    cluster = PgCluster(tmp_dir)
    cluster.start()                  # initdb + postgres on a free loopback port
    cluster.url                      # postgresql://postgres@127.0.0.1:PORT/smstally
    cluster.new_database("t_1")      # -> postgresql://postgres@127.0.0.1:PORT/t_1
    cluster.stop()                   # idempotent; also runs at exit

The cluster lives in a fresh directory under the system temp dir (``/tmp``),
owned by the ``postgres`` user when we run as root (PostgreSQL refuses to run
as root, and pytest's own ``tmp_path`` directories are ``0700 root``, so the
server could not even enter them). ``tmp_dir`` receives the server log:
``tmp_dir/postgresql.log`` is a symlink to the live log while the cluster runs
and a copy of it after ``stop()``, which removes the cluster directory.

Speed settings fit for tests only: ``fsync=off``, ``synchronous_commit=off``,
``full_page_writes=off``, ``wal_level=minimal``, initdb ``--no-sync``.
Authentication is ``trust``, for the unix socket (inside the cluster
directory) and for 127.0.0.1 only; the server listens on 127.0.0.1 only.

No postmaster is ever left behind:

* ``stop()`` runs ``pg_ctl stop -m fast``, then ``-m immediate``, then SIGKILLs
  the server's process group and any process whose working directory is the
  data directory (every PostgreSQL process chdirs into it);
* ``stop()`` is registered with ``atexit``;
* on Linux the postmaster is started with ``PR_SET_PDEATHSIG = SIGINT`` (a
  *fast* shutdown) when started from the main thread, so a SIGKILLed pytest
  still takes it down (the data directory then stays in ``/tmp``).

The server is started directly (``postgres -D ...`` as a child process, not
daemonised by ``pg_ctl start``) for that last point and so that we can reap it.
"""

from __future__ import annotations

import atexit
import ctypes
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

__all__ = ["PgCluster", "PgClusterError", "find_pg_bindir", "free_port"]

_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PgClusterError(RuntimeError):
    """The cluster could not be created, started or stopped."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def find_pg_bindir() -> Path:
    """The directory of initdb/pg_ctl/postgres: from PATH (following the
    /usr/local/bin symlinks, so that sibling tools such as pg_isready are found),
    else the newest /usr/lib/postgresql/*/bin."""
    found = shutil.which("initdb")
    if found:
        bindir = Path(os.path.realpath(found)).parent
        if (bindir / "pg_ctl").exists() and (bindir / "postgres").exists():
            return bindir
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: [int(x) if x.isdigit() else 0 for x in Path(p).parent.parent.name.split(".")],
    )
    if candidates:
        return Path(candidates[-1]).parent
    raise PgClusterError(
        "PostgreSQL server binaries not found: `initdb` is not on PATH and there is no "
        "/usr/lib/postgresql/*/bin/initdb. Install the PostgreSQL 15 server "
        "(Debian: `apt-get install postgresql-15`) to run the PostgreSQL tests."
    )


def _die_with_parent() -> None:
    """preexec_fn: SIGINT (fast shutdown) to the postmaster when pytest dies.
    Runs after the uid/gid change of subprocess (which would clear it)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGINT, 0, 0, 0)
    except OSError:  # not glibc/Linux: atexit is the only safety net
        pass


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead for our purposes
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


class PgCluster:
    """A PostgreSQL cluster in a fresh temp directory; see the module docstring."""

    def __init__(self, tmp_dir: str | os.PathLike, *, dbname: str = "smstally"):
        self.tmp_dir = Path(tmp_dir)
        self.dbname = dbname
        self.port: int | None = None
        self.base: Path | None = None  # the cluster's own directory
        self.bindir: Path | None = None
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._stopped = False

    # -- paths and urls -----------------------------------------------------

    @property
    def data_dir(self) -> Path:
        assert self.base is not None, "the cluster was not started"
        return self.base / "data"

    @property
    def socket_dir(self) -> Path:
        assert self.base is not None, "the cluster was not started"
        return self.base / "sock"

    @property
    def log_path(self) -> Path:
        """The server log (a symlink to the live log while running, a copy after stop)."""
        return self.tmp_dir / "postgresql.log"

    def url_for(self, dbname: str) -> str:
        assert self.port is not None, "the cluster was not started"
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    @property
    def url(self) -> str:
        """postgresql://postgres@127.0.0.1:PORT/smstally"""
        return self.url_for(self.dbname)

    @property
    def pid(self) -> int | None:
        """The postmaster's pid, while it runs."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    # -- privileges ---------------------------------------------------------

    def _owner(self) -> pwd.struct_passwd | None:
        """The postgres account when we are root (None: run as ourselves)."""
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam("postgres")
        except KeyError:
            raise PgClusterError(
                "running as root, and PostgreSQL refuses to run as root, but there is no "
                "`postgres` system user to run it as (useradd --system postgres)"
            ) from None

    def _spawn_kwargs(self) -> dict:
        owner = self._owner()
        env = {
            "PATH": f"{self.bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "LC_ALL": "C",
            "LANG": "C",
            "HOME": str(self.base),
            "TZ": "UTC",
        }
        kwargs: dict = {"cwd": str(self.base), "env": env, "stdin": subprocess.DEVNULL}
        if owner is not None:
            env["USER"] = env["LOGNAME"] = owner.pw_name
            kwargs.update(user=owner.pw_uid, group=owner.pw_gid, extra_groups=[])
        return kwargs

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            timeout=timeout,
            **self._spawn_kwargs(),
        )

    # -- lifecycle ----------------------------------------------------------

    def start(self, timeout: float = 30) -> PgCluster:
        """initdb, start the server, wait until it accepts connections, create
        the database ``smstally``. Raises PgClusterError with the log on failure."""
        with self._lock:
            if self._proc is not None:
                raise PgClusterError("the cluster is already started")
            self._stopped = False
            self.bindir = find_pg_bindir()
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
            self.base = Path(tempfile.mkdtemp(prefix="smstally-pg-"))
            atexit.register(self.stop)
        try:
            self._initdb()
            deadline = time.monotonic() + timeout
            for attempt in range(5):  # the free port may be taken before we bind it
                self.port = free_port()
                self._launch()
                if self._wait_ready(deadline):
                    break
                if attempt < 4 and "could not bind" in self._log_text() and time.monotonic() < deadline:
                    self._kill_everything()
                    continue
                raise PgClusterError(
                    f"PostgreSQL did not start within {timeout:.0f} s\n--- {self.log_path}:\n"
                    + self._log_text()[-4000:]
                )
            self._execute("postgres", f'CREATE DATABASE "{self.dbname}"')
        except BaseException:
            self.stop()
            raise
        return self

    def _initdb(self) -> None:
        owner = self._owner()
        if owner is not None:
            os.chown(self.base, owner.pw_uid, owner.pw_gid)
        os.chmod(self.base, 0o700)
        proc = self._run(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        )
        if proc.returncode != 0:
            raise PgClusterError(f"initdb failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        (self.data_dir / "pg_hba.conf").write_text(
            "# throwaway test cluster: trust, loopback only\nlocal all all trust\nhost  all all 127.0.0.1/32 trust\n"
        )
        self.socket_dir.mkdir()
        if owner is not None:
            os.chown(self.socket_dir, owner.pw_uid, owner.pw_gid)
            os.chown(self.data_dir / "pg_hba.conf", owner.pw_uid, owner.pw_gid)

    def _launch(self) -> None:
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "wal_level": "minimal",
            "max_wal_senders": "0",
            "max_connections": "200",
            "shared_buffers": "32MB",
            "autovacuum": "off",
            "log_min_messages": "warning",
            "log_timezone": "UTC",
        }
        argv = [str(self.bindir / "postgres"), "-D", str(self.data_dir)]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        live_log = self.base / "postgresql.log"
        with open(live_log, "ab") as log:
            in_main_thread = threading.current_thread() is threading.main_thread()
            self._proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # PDEATHSIG follows the forking *thread*: only safe from the main one.
                preexec_fn=_die_with_parent if in_main_thread else None,
                **self._spawn_kwargs(),
            )
        try:
            if self.log_path.is_symlink() or self.log_path.exists():
                self.log_path.unlink()
            self.log_path.symlink_to(live_log)
        except OSError:
            pass

    def _wait_ready(self, deadline: float) -> bool:
        import psycopg

        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            try:
                with psycopg.connect(self.url_for("postgres"), connect_timeout=2):
                    return True
            except psycopg.OperationalError:
                time.sleep(0.05)
        return False

    def _log_text(self) -> str:
        try:
            return (self.base / "postgresql.log").read_text(errors="replace")
        except (OSError, TypeError):
            return ""

    def _execute(self, dbname: str, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url_for(dbname), autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql)

    def new_database(self, name: str) -> str:
        """CREATE DATABASE name (a lowercase identifier); returns its url."""
        if not _DB_NAME.match(name):
            raise ValueError(f"database name must match {_DB_NAME.pattern}: {name!r}")
        self._execute("postgres", f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """DROP DATABASE name WITH (FORCE): connections still open are closed."""
        if not _DB_NAME.match(name):
            raise ValueError(f"bad database name {name!r}")
        self._execute("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def processes(self) -> list[int]:
        """Pids of the processes of this cluster: the postmaster and its children
        all have the data directory as working directory."""
        if self.base is None:
            return []
        data = os.path.realpath(self.data_dir)
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                cwd = os.readlink(f"/proc/{entry}/cwd")
            except OSError:
                continue
            if (cwd == data or cwd == data + " (deleted)") and _pid_alive(int(entry)):
                pids.append(int(entry))
        return pids

    def stop(self) -> None:
        """pg_ctl stop -m fast, then -m immediate, then SIGKILL; removes the
        cluster directory (the log is kept in tmp_dir). Idempotent."""
        with self._lock:
            if self._stopped or self.base is None:
                self._stopped = True
                return
            self._stopped = True
            try:
                atexit.unregister(self.stop)
            except Exception:  # pragma: no cover - interpreter shutting down
                pass
            try:
                if self._proc is not None and self._proc.poll() is None:
                    for mode, wait in (("fast", 10), ("immediate", 5)):
                        try:
                            self._run(
                                "pg_ctl",
                                "stop",
                                "-D",
                                str(self.data_dir),
                                "-m",
                                mode,
                                "-w",
                                "-t",
                                str(wait),
                                timeout=wait + 5,
                            )
                        except (OSError, subprocess.TimeoutExpired):
                            pass
                        try:
                            self._proc.wait(timeout=2)
                            break
                        except subprocess.TimeoutExpired:
                            continue
            finally:
                self._kill_everything()
                self._keep_log()
                shutil.rmtree(self.base, ignore_errors=True)

    def _kill_everything(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                try:  # start_new_session: pgid == postmaster pid; backends share it
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:  # pragma: no cover
                pass
        deadline = time.monotonic() + 5
        while True:
            left = self.processes()
            if not left:
                return
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if time.monotonic() > deadline:  # pragma: no cover
                raise PgClusterError(f"PostgreSQL processes {left} of {self.data_dir} survive SIGKILL")
            time.sleep(0.05)

    def _keep_log(self) -> None:
        live_log = self.base / "postgresql.log"
        try:
            if self.log_path.is_symlink():
                self.log_path.unlink()
            if live_log.exists():
                shutil.copyfile(live_log, self.log_path)
        except OSError:
            pass

    def __enter__(self) -> PgCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"PgCluster(port={self.port}, base={self.base}, running={self.pid is not None})"
