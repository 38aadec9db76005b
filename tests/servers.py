"""Private servers that a test starts, stops and kills: never the machine's own.

`RedisServer` runs a redis-server on a free port, `RedisClusterServer` a cluster of
them; `PostgresServer` an initdb'd cluster
in a temporary directory on a free port (run as the `postgres` OS user when the tests
run as root, since PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
import redis

NO_DISK = ["--appendonly", "no", "--daemonize", "no", "--logfile", ""]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RedisServer:
    """A redis-server of the test's own, on its own port, that the test may kill."""

    port: int
    process: subprocess.Popen[bytes] | None = None
    extra: list[str] = field(default_factory=list)  # more redis-server options

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed", pytrace=False)
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        self.process = subprocess.Popen(
            [*command, *NO_DISK, *self.extra],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=0.2).ping()
                return
            except redis.RedisError:
                time.sleep(0.05)
        pytest.fail(f"redis-server did not start on port {self.port}", pytrace=False)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


def postgres_bindir() -> Path:
    """The bin directory of a PostgreSQL installation (TRADESTORE_TEST_PG_BINDIR, else
    the newest under /usr/lib/postgresql, else the one of pg_config on PATH)."""
    configured = os.environ.get("TRADESTORE_TEST_PG_BINDIR")
    if configured:
        return Path(configured)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True)
        return Path(out.stdout.strip())
    pytest.fail("no PostgreSQL server binaries found (set TRADESTORE_TEST_PG_BINDIR)")


@dataclass
class PostgresServer:
    """A PostgreSQL cluster of the test's own (trust auth, user postgres)."""

    bindir: Path = field(default_factory=postgres_bindir)
    port: int = field(default_factory=free_port)
    settings: dict[str, str] = field(default_factory=dict)
    root: Path | None = None

    @property
    def url(self) -> str:
        return self.database_url("postgres")

    def database_url(self, name: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    @property
    def datadir(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=check, timeout=60)

    def init(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="tradestore-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.datadir), "-U", "postgres", "--auth=trust", "-N")
        lines = {
            "port": str(self.port),
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.root}'",
            "fsync": "off",
            "max_connections": "100",
            **self.settings,
        }
        with open(self.datadir / "postgresql.conf", "a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in lines.items())

    def start(self) -> None:
        if self.root is None:
            self.init()
        log = str(self.root / "log")
        self._run("pg_ctl", "-D", str(self.datadir), "-l", log, "-w", "-t", "30", "start")
        self.wait_ready()

    def wait_ready(self, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(self.url, connect_timeout=1) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                time.sleep(0.1)
        pytest.fail(f"private PostgreSQL did not start on port {self.port}", pytrace=False)

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "stop", check=False)

    def destroy(self) -> None:
        if self.root is not None:
            self.stop("immediate")
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None


@dataclass
class PgBouncer:
    """A PgBouncer of the test's own in transaction pooling mode, in front of a
    PostgreSQL server (trust auth; run as postgres when the tests run as root)."""

    backend_host: str
    backend_port: int
    port: int = field(default_factory=free_port)
    root: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        if not Path(binary).exists():
            pytest.fail("pgbouncer is not installed (.ci/run installs it)", pytrace=False)
        self.root = Path(tempfile.mkdtemp(prefix="tradestore-pgbouncer-"))
        (self.root / "users.txt").write_text('"postgres" ""\n')
        (self.root / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host={self.backend_host} port={self.backend_port}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\n"
            f"unix_socket_dir = {self.root}\n"
            f"auth_type = trust\nauth_file = {self.root / 'users.txt'}\n"
            "pool_mode = transaction\nmax_client_conn = 1000\ndefault_pool_size = 40\n"
            "admin_users = postgres\n"
        )
        command = [binary, str(self.root / "pgbouncer.ini")]
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            for child in self.root.iterdir():
                shutil.chown(child, "postgres", "postgres")
            command = ["runuser", "-u", "postgres", "--", *command]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(self.url("postgres"), connect_timeout=1) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.1)
        pytest.fail(f"pgbouncer did not start on port {self.port}", pytrace=False)
        # (its own log: `logfile` in the config when debugging a start)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.process = None
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None


def replica_of(primary: PostgresServer) -> PostgresServer:
    """A streaming replica of primary (pg_basebackup -R), started on a port of its own."""
    replica = PostgresServer(bindir=primary.bindir)
    replica.root = Path(tempfile.mkdtemp(prefix="tradestore-pg-replica-"))
    if os.geteuid() == 0:
        shutil.chown(replica.root, "postgres", "postgres")
    replica._run(
        "pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
        "-D", str(replica.datadir), "-R", "-X", "stream", "-c", "fast",
    )  # fmt: skip
    with open(replica.datadir / "postgresql.conf", "a") as conf:  # later lines win
        conf.write(f"port = {replica.port}\nunix_socket_directories = '{replica.root}'\n")
    replica.start()
    return replica


def wait_for_count(url: str, query: str, params: tuple[object, ...], count: int) -> None:
    """Poll the count query at url until it reaches count (a replica replaying what the
    primary wrote); fails after 60 s. A relation the query names may not exist there yet:
    the replica has not replayed the migration that made it, which is lag too."""
    deadline = time.monotonic() + 60
    last = "no row"
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(url) as conn:
                row = conn.execute(query, params).fetchone()  # type: ignore[arg-type]
        except psycopg.errors.UndefinedTable as exc:
            row, last = None, str(exc).splitlines()[0]
        else:
            last = f"count {row[0] if row else None}"
        if row and row[0] >= count:
            return
        time.sleep(0.1)
    pytest.fail(f"{url}: {query} did not reach {count} within 60 s ({last})", pytrace=False)


@dataclass
class RedisClusterServer:
    """A Redis Cluster of the test's own: `masters` masters with one replica each, every
    node a redis-server on a free port with its nodes.conf in a temporary directory."""

    masters: int = 3
    nodes: list[RedisServer] = field(default_factory=list)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="tscluster-")))

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{node.port}" for node in self.nodes[: self.masters])
        return f"redis+cluster://{hosts}"

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()  # no node outlives a cluster that did not come up
            raise

    def _start(self) -> None:
        for _ in range(self.masters * 2):
            port = free_port()
            node = RedisServer(
                port=port,
                extra=[
                    "--cluster-enabled", "yes",
                    "--cluster-port", str(free_port()),  # not port + 10000: may exceed 65535
                    "--cluster-config-file", str(self.workdir / f"nodes-{port}.conf"),
                    "--cluster-node-timeout", "2000",
                    "--dir", str(self.workdir),
                ],
            )  # fmt: skip
            node.start()
            self.nodes.append(node)
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        create = ["redis-cli", "--cluster", "create", *addresses, "--cluster-replicas", "1"]
        subprocess.run(
            [*create, "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        self.wait_ok()

    def wait_ok(self, timeout_s: float = 30) -> None:
        """Until every node says the cluster is ok and knows all masters' slots."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            states = [self.node_info(node, "cluster_state") for node in self.nodes]
            if all(state == "ok" for state in states):
                return
            time.sleep(0.2)
        pytest.fail("the Redis Cluster did not become ok", pytrace=False)

    def node_info(self, node: RedisServer, name: str) -> str | None:
        try:
            info = redis.Redis(port=node.port, socket_timeout=1).cluster("INFO")
        except redis.RedisError:
            return None
        value = info.get(name)  # redis-py parses CLUSTER INFO into a dict
        return None if value is None else str(value)

    def master_of(self, key: str) -> RedisServer:
        """The master serving key's slot, by its own account (another node's view may
        lag a failover by a moment)."""
        slot = int(redis.Redis(port=self.nodes[0].port).execute_command("CLUSTER KEYSLOT", key))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for node in self.nodes:
                client = redis.Redis(port=node.port)
                if client.info("replication").get("role") != "master":
                    continue
                for start, end, master, *_ in client.execute_command("CLUSTER SLOTS"):
                    if int(start) <= slot <= int(end) and int(master[1]) == node.port:
                        return node
            time.sleep(0.1)
        raise AssertionError(f"no master serves slot {slot}")

    def replica_of(self, master: RedisServer) -> RedisServer:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # a replica attaches a moment after create
            for node in self.nodes:
                info = redis.Redis(port=node.port).info("replication")
                if info.get("role") == "slave" and int(info.get("master_port", 0)) == master.port:
                    return node
            time.sleep(0.1)
        raise AssertionError(f"master {master.port} has no replica")

    def failover(self, master: RedisServer) -> RedisServer:
        """Promote the master's replica with CLUSTER FAILOVER; the new master. The replica
        must be in sync first (a manual failover waits for its offset, and times out)."""
        replica = self.replica_of(master)
        client = redis.Redis(port=replica.port)
        for _ in range(3):
            deadline = time.monotonic() + 10
            while client.info("replication").get("master_link_status") != "up":
                if time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            client.execute_command("CLUSTER FAILOVER")
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if client.info("replication").get("role") == "master":
                    self.wait_ok()
                    return replica
                time.sleep(0.1)
        pytest.fail(f"replica {replica.port} was not promoted", pytrace=False)

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()
        self.nodes.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)
