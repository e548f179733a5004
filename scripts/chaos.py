"""Chaos soak: run ablate's queue under repeated faults for a while, then prove nothing was lost or run twice.

On one storage URL, rounds of two studies at smoke fidelity run back to back for ``--duration`` seconds, each
worked by ``--workers`` worker processes that only ``--join`` (the real CLI, through scripts/chaos_worker.py):

* a designed ablation (``ablate ablation``: every design point x seed must complete exactly once);
* a sensitivity study (``ablate study --sampler random``: exactly ``--trials`` finished trials).

Meanwhile a seeded chaos loop, at exponentially distributed intervals, strikes the kinds below in shuffled
rounds (every kind once per round; a strike that found nothing to hit stays due) and, when ``--duration`` is
over before every kind has struck once, goes on up to three times as long until it has:

* ``sigkill``: SIGKILL a random worker and start a new one (``--join``);
* ``sigterm``: SIGTERM a random worker (it fails its trial as interrupted) and start a new one;
* ``conn_kill`` (PostgreSQL, MariaDB): kill a random worker's database connections on the server
  (``pg_terminate_backend`` / ``KILL``), found through the worker's sockets;
* ``db_restart`` (PostgreSQL, MariaDB; only with ``--restart-server``, as it stops the server for everyone
  using it): stop the database server, wait ``--restart-down`` seconds (default 10), start it again and wait
  until it takes a connection. Every worker at once loses its connections: it must ride the restart out
  through ablate's retry path, or fail its trial with a reason. PostgreSQL stops and starts through
  ``pg_ctlcluster VERSION NAME stop -m fast`` / ``start`` (the cluster on the URL's port, from
  ``pg_lsclusters``); MariaDB stops through ``mysqladmin shutdown`` and starts again as the running server was
  started (its command line, owner and nice value, read from /proc before the first stop), in a new session.
  ``--server-stop`` / ``--server-start`` replace those commands. However the soak ends (an error, Ctrl-C,
  SIGTERM), a server it stopped is started again, and the soak checks it with a connection;
* ``nan`` / ``raise``: make the next trial to start return NaN or raise (a token the worker wrapper takes;
  a test-only mechanism, not in ablate).

Afterwards the workers drain the queue, ``ablate recover`` runs once per study, the coordinators are rerun (the
documented resume: failed design points and interrupted tickets go back in the queue), fresh workers finish,
and the checks below are printed one per line, then ``N passed, N failed`` (exit 1 if any failed):
exact totals; no design point x seed completed twice; every COMPLETE trial intact (value finite and equal to
its record's, the record readable through ablate.record); every FAIL carries its reason; no RUNNING or WAITING
trial left; no worker exited unexpectedly; no result discarded; the report builds.

Examples:
  python scripts/chaos.py --storage sqlite:////tmp/chaos.db --duration 600
  python scripts/chaos.py --storage postgresql://postgres@127.0.0.1/test --duration 120 --json pg.json
  python scripts/chaos.py --storage redis://127.0.0.1:6379/0 --duration 120 --no-chaos   # the baseline
  sudo python scripts/chaos.py --storage mysql://root@127.0.0.1/test --duration 600 --restart-server
Linux only (the connection kill reads /proc). ``--restart-server`` needs the rights to stop and start the
server (root on a machine with the server's own service commands). The studies are deleted afterwards unless --keep.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORKER = ROOT / "scripts" / "chaos_worker.py"
KINDS = ("sigkill", "sigterm", "conn_kill", "db_restart", "nan", "raise")


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    index: int
    log: Path
    signalled: str | None = None  # the chaos signal sent to it, if any


@dataclass
class Soak:
    args: argparse.Namespace
    url: str
    kind: str
    workdir: Path
    rng: random.Random
    tag: str
    rounds: list[tuple[str, str]] = field(default_factory=list)  # (ablation name, study name)
    workers: list[Worker] = field(default_factory=list)
    started: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    conn_killed: int = 0
    unexpected_exits: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    bag: list[str] = field(default_factory=list)  # the kinds still to strike in this shuffled round
    t0: float = 0.0
    storage: Any = None  # the soak's own storage (studies()), opened once
    server: ServerControl | None = None  # stops and starts the database server (db_restart), if allowed
    restarts: list[dict[str, float]] = field(default_factory=list)  # each db_restart's timings
    refused_exits: list[float] = field(default_factory=list)  # workers that exited 2: server refused (restart)

    # ----------------------------------------------------------------------------------------- commands
    def common(self) -> list[str]:
        a = self.args
        return ["--fidelity", "smoke", "--storage", self.url, "--heartbeat", str(a.heartbeat), "--grace", str(a.grace)]

    def ablation_args(self, name: str) -> list[str]:
        return ["ablation", "--case", self.args.case, "--seeds", str(self.args.seeds), "--study-name", name]

    def study_args(self, name: str) -> list[str]:
        a = self.args
        return ["study", "--case", a.case, "--trials", str(a.trials), "--sampler", "random", "--pruner", "none"] + [
            "--study-name",
            name,
        ]

    def ablate(self, argv: list[str]) -> Result:
        """Run one ``ablate`` command in this process (coordinators, recover, report: no start-up cost each)."""
        import io

        from ablate import cli

        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                cli.main(argv)
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        return Result(code, stdout.getvalue(), stderr.getvalue())  # the command gave its connections back

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore", COLUMNS="200")
        return env

    def coordinate(self, names: tuple[str, str]) -> None:
        """Create the round's studies and fill their queues (``--workers 0``); rerun, it tops them up."""
        for argv in (self.ablation_args(names[0]), self.study_args(names[1])):
            r = self.ablate([*argv, *self.common(), "--workers", "0"])
            if r.returncode != 0:
                raise SystemExit(f"error: coordinator failed ({r.returncode}): {r.stderr.strip()[-800:]}")

    def start_worker(self, rounds: list[tuple[str, str]]) -> Worker:
        argv = [sys.executable, str(WORKER), "--chaos-dir", str(self.workdir), "--"]
        for i, (abl, sens) in enumerate(rounds):
            if i:
                argv.append("--then")
            argv += [*self.ablation_args(abl), *self.common(), "--workers", "1", "--join", "--then"]
            argv += [*self.study_args(sens), *self.common(), "--workers", "1", "--join"]
        self.started += 1
        log = self.workdir / "logs" / f"worker-{self.started:03d}.log"
        with open(log, "wb") as fh:
            proc = subprocess.Popen(argv, cwd=ROOT, env=self.env(), stdout=fh, stderr=subprocess.STDOUT)
        worker = Worker(proc, self.started, log)
        self.workers.append(worker)
        return worker

    def reap(self, *, replace: bool) -> None:
        """Forget exited workers; note unexpected exits; with ``replace``, start a worker for each that died."""
        for w in list(self.workers):
            rc = w.proc.poll()
            if rc is None:
                continue
            self.workers.remove(w)
            expected = rc == 0 or (w.signalled == "sigkill" and rc == -signal.SIGKILL)
            expected = expected or (w.signalled == "sigterm" and rc in (130, -signal.SIGTERM))
            if not expected:
                tail = w.log.read_text(errors="replace").strip().splitlines()[-3:]
                t = round(time.time() - self.t0, 1)
                self.unexpected_exits.append(f"worker {w.index} exit {rc} (noticed at {t:g} s): {' | '.join(tail)}")
                if rc == 2 and self.restarts and any(_refused(line) for line in tail):
                    self.refused_exits.append(t)  # a db_restart's outage met it opening the storage
            if replace and rc != 0 and w.signalled is None:  # a crash; the chaos loop replaces its own victims
                self.start_worker(self.rounds[-1:])

    # -------------------------------------------------------------------------------------------- chaos
    def kinds(self) -> list[str]:
        server = self.kind in ("postgresql", "mysql")
        return [
            k
            for k in KINDS
            if (k != "conn_kill" or server) and (k != "db_restart" or (server and self.server is not None))
        ]

    def struck(self) -> set[str]:
        return {e["kind"] for e in self.events}

    def fault(self) -> None:
        """Strike the next kind of a shuffled round of every kind (so each kind strikes within one round,
        however few faults a loaded machine leaves time for); a strike that found nothing to hit stays due."""
        if not self.bag:
            self.bag = self.kinds()
            self.rng.shuffle(self.bag)
        kind = self.bag.pop()
        live = [w for w in self.workers if w.proc.poll() is None and w.signalled is None]
        if kind in ("nan", "raise"):
            token = self.workdir / "inject" / f"{kind}-{len(self.events):04d}"
            token.write_text("")
        elif not live:
            self.bag.append(kind)
            return
        elif kind == "db_restart":
            assert self.server is not None
            timings = self.server.restart()  # blocks: down for --restart-down s, then until a connection works
            self.restarts.append({"t": round(time.time() - self.t0, 2), **timings})
            print(f"db_restart at {self.restarts[-1]['t']:.0f} s: {timings}", flush=True)
            self.faults[kind] += 1
        elif kind in ("sigkill", "sigterm"):
            victim = self.rng.choice(live)
            victim.signalled = kind
            victim.proc.send_signal(signal.SIGKILL if kind == "sigkill" else signal.SIGTERM)
            self.start_worker(self.rounds[-1:])
            self.faults[kind] += 1
        else:
            port = server_port(self.url, self.kind)
            holding = [w for w in live if client_ports(w.proc.pid, port)]  # not those still starting up
            victim = self.rng.choice(holding) if holding else live[0]
            try:
                killed = kill_connections(self.url, self.kind, victim.proc.pid)
            except Exception as exc:  # the server is full or down (another fault): this strike found nothing
                if not _is_storage_error(exc):
                    raise
                killed = 0
            if not killed:  # it held no connection right now (starting up): not a fault, still due
                self.events.append({"t": round(time.time() - self.t0, 2), "kind": "conn_kill_missed"})
                self.bag.append(kind)
                return
            self.conn_killed += killed
            self.faults[kind] += 1
        self.events.append({"t": round(time.time() - self.t0, 2), "kind": kind})

    def run(self) -> dict[str, Any]:
        a = self.args
        self.t0 = time.time()
        chaos_end = self.t0 + a.duration
        hard_end = self.t0 + 3 * a.duration  # past --duration only while some kind has not struck yet
        next_fault = self.t0 + self.rng.expovariate(1 / a.mean_interval)
        while time.time() < chaos_end or (
            not a.no_chaos and not set(self.kinds()) <= self.struck() and time.time() < hard_end
        ):
            if not self.workers:  # the round is done (or not begun): start the next
                names = (
                    f"chaos-{self.tag}-r{len(self.rounds)}-ablation",
                    f"chaos-{self.tag}-r{len(self.rounds)}-study",
                )
                self.coordinate(names)
                self.rounds.append(names)
                for _ in range(a.workers):
                    self.start_worker([names])
            if not a.no_chaos and time.time() >= next_fault:
                self.fault()
                next_fault = time.time() + self.rng.expovariate(1 / a.mean_interval)
            time.sleep(0.2)
            self.reap(replace=not a.no_chaos)
        chaos_s = time.time() - self.t0
        completed_in_window = self.completed_before(time.time())
        for token in (self.workdir / "inject").iterdir():  # not taken in time: not injected
            token.unlink(missing_ok=True)
        self.faults["nan"] = sum(1 for p in (self.workdir / "taken").iterdir() if p.name.startswith("nan-"))
        self.faults["raise"] = sum(1 for p in (self.workdir / "taken").iterdir() if p.name.startswith("raise-"))
        print(f"chaos over after {chaos_s:.0f} s: {dict(self.faults)}; draining", flush=True)
        self.drain(a.drain_timeout)
        recover_out = []
        for names in self.rounds:
            for name in names:
                r = self.ablate(["recover", "--stale-after", "1", "--study-name", name, "--storage", self.url])
                recover_out.append((r.stdout + r.stderr).strip())
                if r.returncode != 0:
                    self.unexpected_exits.append(f"recover {name} exit {r.returncode}: {r.stderr.strip()[-300:]}")
        for names in self.rounds:
            self.coordinate(names)
        for _ in range(a.workers):
            self.start_worker(self.rounds)
        self.drain(a.drain_timeout)
        return {
            "chaos_s": chaos_s,
            "completed_in_window": completed_in_window,
            "throughput_per_min": completed_in_window / chaos_s * 60,
            "recover": recover_out,
        }

    def drain(self, timeout: float) -> None:
        deadline = time.time() + timeout
        while self.workers and time.time() < deadline:
            time.sleep(0.5)
            self.reap(replace=False)
        for w in self.workers:  # stuck: a finding of its own
            self.unexpected_exits.append(f"worker {w.index} still running after {timeout:g} s of draining")
            w.proc.kill()
            w.proc.wait()
        self.workers.clear()

    def completed_before(self, when: float) -> int:
        import datetime as dt

        from optuna.trial import TrialState

        cutoff = dt.datetime.fromtimestamp(when)
        n = 0
        for study in self.studies():
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
                n += int(t.datetime_complete is not None and t.datetime_complete <= cutoff)
        return n

    def studies(self) -> list[Any]:
        import optuna

        from ablate.execution.storages import open_storage

        if self.storage is None:  # one storage for the soak's own reads: one idle connection, not one per call
            self.storage = open_storage(self.url, heartbeat_interval=None, create=False)
        return [optuna.load_study(study_name=n, storage=self.storage) for names in self.rounds for n in names]


# ------------------------------------------------------------------------------------------- connections
def _is_storage_error(exc: BaseException) -> bool:
    import sqlalchemy

    return isinstance(exc, sqlalchemy.exc.SQLAlchemyError)


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    return inodes


def client_ports(pid: int, server_port: int) -> set[int]:
    """Local TCP ports of ``pid``'s connections to ``server_port`` (from /proc)."""
    inodes = _socket_inodes(pid)
    ports = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/net/{table}") as fh:
            for line in fh.readlines()[1:]:
                cols = line.split()
                local, remote, inode = cols[1], cols[2], cols[9]
                if inode in inodes and int(remote.rsplit(":", 1)[1], 16) == server_port:
                    ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


def server_port(url: str, kind: str) -> int:
    import sqlalchemy

    return sqlalchemy.engine.make_url(url).port or (5432 if kind == "postgresql" else 3306)


def kill_connections(url: str, kind: str, pid: int) -> int:
    """Kill every database connection of process ``pid`` on the server; how many were killed."""
    import sqlalchemy

    u = sqlalchemy.engine.make_url(url)
    ports = client_ports(pid, server_port(url, kind))
    if not ports:
        return 0
    engine = sqlalchemy.create_engine(u, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as conn:
            if kind == "postgresql":
                rows = conn.exec_driver_sql(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE client_port = ANY(%(p)s)",
                    {"p": sorted(ports)},
                ).fetchall()
                return sum(1 for (ok,) in rows if ok)
            killed = 0
            for ident, host in conn.exec_driver_sql("SELECT ID, HOST FROM information_schema.PROCESSLIST"):
                if host and ":" in host and int(host.rsplit(":", 1)[1]) in ports:
                    with contextlib.suppress(sqlalchemy.exc.DBAPIError):
                        conn.exec_driver_sql(f"KILL {int(ident)}")
                        killed += 1
            return killed
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------------------- server restart
class ServerControl:
    """Stop and start the database server behind ``url`` (the ``db_restart`` fault).

    Built before the first stop, so that it can start the server again as it was running: for MariaDB /
    MySQL the running server's command line, owner and nice value are read from /proc. A server started
    again gets the nice value the server had, not the soak's (which may run under ``nice``)."""

    def __init__(self, url: str, kind: str, down_s: float, stop: str | None = None, start: str | None = None):
        import sqlalchemy

        self.url, self.kind, self.down_s = url, kind, down_s
        self.stopped = False  # this soak stopped the server and has not started it again yet
        u = sqlalchemy.engine.make_url(url)
        port = server_port(url, kind)
        self.detach = False  # start in a new session, not waited for (a server that does not daemonize)
        self.proc: subprocess.Popen[bytes] | None = None  # the server this soak started last, if detached
        self.pid = 0
        self.nice = 0
        if kind == "postgresql":
            cluster = _pg_cluster(port)
            default_stop = ["pg_ctlcluster", *cluster, "stop", "-m", "fast"]
            default_start = ["pg_ctlcluster", *cluster, "start"]
            self.nice = _pg_nice(port)
        else:
            pid = _server_pid(("mariadbd", "mysqld"))
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
            default_start = [c.decode() for c in cmdline]
            owner = _user_of(pid)
            if owner != "root" and not any(c.startswith("--user") for c in default_start):
                default_start.append(f"--user={owner}")
            self.detach = True
            self.nice = _nice_of(pid)
            default_stop = ["mysqladmin", f"-u{u.username or 'root'}", "-h", u.host or "127.0.0.1", "-P", str(port)]
            if u.password:
                default_stop.append(f"--password={u.password}")
            default_stop += ["shutdown"]
            self.pid = pid
        self.stop_cmd = shlex.split(stop) if stop else default_stop
        self.start_cmd = shlex.split(start) if start else default_start
        if not shutil.which(self.stop_cmd[0]) or not shutil.which(self.start_cmd[0]):
            raise RuntimeError(f"no {self.stop_cmd[0]} / {self.start_cmd[0]} on this machine")
        if os.geteuid() != 0 and (stop is None or start is None):
            raise RuntimeError("stopping and starting the server needs root (or --server-stop / --server-start)")

    def describe(self) -> str:
        return f"stop: {shlex.join(self.stop_cmd)}; start: {shlex.join(self.start_cmd)}"

    def _preexec(self) -> None:
        os.setpriority(os.PRIO_PROCESS, 0, self.nice)  # the server's own nice value, not the soak's

    def stop(self) -> None:
        self.stopped = True  # from here on, whatever happens, start() runs before the soak ends
        subprocess.run(self.stop_cmd, check=True, capture_output=True, timeout=120)
        if self.kind != "postgresql":  # mysqladmin may return before the process is gone
            deadline = time.time() + 120
            while _alive(self.pid) and time.time() < deadline:
                if self.proc is not None:
                    self.proc.poll()  # a server this soak started is its child: reap it, or it stays a zombie
                time.sleep(0.1)

    def start(self) -> None:
        if self.detach:
            self.proc = subprocess.Popen(
                self.start_cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=self._preexec,
                cwd="/",
            )
        else:
            subprocess.run(
                self.start_cmd, check=True, capture_output=True, timeout=120, preexec_fn=self._preexec, cwd="/"
            )
        self.wait_up(120)
        self.stopped = False
        if self.kind != "postgresql":
            self.pid = _server_pid(("mariadbd", "mysqld"))

    def wait_up(self, timeout: float) -> float:
        """Seconds until the server takes a connection (``SELECT 1``); raises after ``timeout``."""
        import sqlalchemy

        t0 = time.time()
        engine = sqlalchemy.create_engine(self.url, poolclass=sqlalchemy.pool.NullPool)
        try:
            while True:
                try:
                    with engine.connect() as conn:
                        conn.exec_driver_sql("SELECT 1")
                    return time.time() - t0
                except sqlalchemy.exc.SQLAlchemyError:
                    if time.time() - t0 > timeout:
                        raise
                    time.sleep(0.2)
        finally:
            engine.dispose()

    def restart(self) -> dict[str, float]:
        """Stop, stay down ``down_s`` seconds, start; the seconds stopping, down and until a connection."""
        t0 = time.time()
        try:
            self.stop()
            t1 = time.time()
            time.sleep(self.down_s)
        finally:
            t2 = time.time()
            self.start()
        t3 = time.time()
        return {"stop_s": round(t1 - t0, 2), "down_s": round(t3 - t1, 2), "start_s": round(t3 - t2, 2)}

    def ensure_up(self) -> None:
        """Start the server again if this soak stopped it; check it takes a connection either way."""
        if self.stopped:
            print("the soak stopped the database server: starting it again", flush=True)
            self.start()
        self.wait_up(120)


def _pg_cluster(port: int) -> list[str]:
    out = subprocess.run(["pg_lsclusters", "--no-header"], check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        cols = line.split()
        if len(cols) >= 3 and cols[2] == str(port):
            return cols[:2]
    raise RuntimeError(f"no PostgreSQL cluster on port {port} in pg_lsclusters")


def _server_pid(names: tuple[str, ...]) -> int:
    for name in names:
        r = subprocess.run(["pidof", name], capture_output=True, text=True)
        if r.returncode == 0 and r.stdout.split():
            return int(r.stdout.split()[0])
    raise RuntimeError(f"no running {' / '.join(names)} process")


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _refused(line: str) -> bool:
    """Whether a worker's last words are ablate's one-line error for a server that refused the connection."""
    low = line.lower()
    return "cannot open storage" in low and ("connection refused" in low or "can't connect to mysql" in low)


def _user_of(pid: int) -> str:
    import pwd

    return pwd.getpwuid(os.stat(f"/proc/{pid}").st_uid).pw_name


def _nice_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[16])  # field 19, counted after the command name


def _pg_nice(port: int) -> int:
    with contextlib.suppress(Exception):
        for line in Path(f"/var/run/postgresql/.s.PGSQL.{port}.lock").read_text().splitlines()[:1]:
            return _nice_of(int(line))
    return 0


# ------------------------------------------------------------------------------------------------ checks
def check(soak: Soak, outcome: dict[str, Any]) -> tuple[list[tuple[bool, str]], dict[str, Any]]:
    """The checks, as (passed, line) pairs, and the numbers behind them."""
    from optuna.trial import TrialState

    from ablate import record
    from ablate.experiment.designs import load_ablation_design

    design = load_ablation_design("ofat", None)
    expected_points = len(design.points([soak.args.case], soak.args.seeds))
    results: list[tuple[bool, str]] = []
    lost = duplicates = completed = 0
    broken: list[str] = []
    no_reason: list[str] = []
    left: list[str] = []
    fail_reasons: Counter[str] = Counter()
    discarded: list[dict[str, Any]] = []
    for study in soak.studies():
        trials = study.get_trials(deepcopy=False)
        done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        completed += len(done)
        if study.study_name.endswith("-ablation"):
            keys = Counter(t.user_attrs.get(record.KEY) for t in done)
            lost += max(0, expected_points - len(keys))
            duplicates += sum(n - 1 for n in keys.values())
        else:
            lost += max(0, soak.args.trials - len(done))
            duplicates += max(0, len(done) - soak.args.trials)
        for t in done:
            try:
                rec = record.read_trial(t)
                ok = t.value is not None and math.isfinite(t.value) and rec.seeds and rec.config
                ok = ok and abs(t.value - statistics.fmean(s.val_accuracy for s in rec.seeds)) < 1e-9
            except Exception as exc:  # an unreadable record is what this check is for
                ok, rec = False, exc
            if not ok:
                broken.append(f"{study.study_name}#{t.number}")
        for t in trials:
            if t.state == TrialState.FAIL:
                reason = t.user_attrs.get(record.FAIL_REASON)
                if not reason:
                    no_reason.append(f"{study.study_name}#{t.number}")
                fail_reasons[str(reason or "none").split(":")[0].split(" (")[0]] += 1
            elif t.state in (TrialState.RUNNING, TrialState.WAITING):
                left.append(f"{study.study_name}#{t.number} {t.state.name}")
        discarded += record.discarded_results(study)
    n_studies = len(soak.rounds)
    results.append((lost == 0 and duplicates == 0, f"exact totals over {n_studies} round(s): lost {lost}"))
    results.append((duplicates == 0, f"no design point x seed (or ticket) completed twice: duplicates {duplicates}"))
    results.append((not broken, f"every COMPLETE trial intact ({completed}): broken {broken[:5]}"))
    results.append((not no_reason, f"every FAIL carries its reason ({dict(fail_reasons)}): without {no_reason[:5]}"))
    results.append((not left, f"no RUNNING or WAITING trial left: {left[:5]}"))
    refused = (
        f" ({len(soak.refused_exits)} of {len(soak.unexpected_exits)}: exit 2 opening the storage while a db_restart"
        " had the server down)"
        if soak.refused_exits
        else ""
    )
    results.append((not soak.unexpected_exits, f"no unexpected worker exit{refused}: {soak.unexpected_exits[:3]}"))
    results.append((not discarded, f"no computed result discarded: {len(discarded)} noted"))
    report_ok, report_detail = True, []
    for names in soak.rounds:
        for name in names:
            r = soak.ablate(
                ["report", name, "--storage", soak.url, "--no-dashboard", "--format", "md,json"]
                + ["--out", str(soak.workdir / "reports" / name)]
            )
            if r.returncode != 0:
                report_ok = False
                report_detail.append(f"{name}: {r.stderr.strip()[-300:]}")
    results.append((report_ok, f"the report builds for all {2 * n_studies} studies {report_detail[:2]}"))
    numbers = {
        "storage": soak.kind,
        "rounds": n_studies,
        "faults": dict(soak.faults),
        "connections_killed": soak.conn_killed,
        "completed": completed,
        "lost": lost,
        "duplicates": duplicates,
        "discarded": len(discarded),
        "fail_reasons": dict(fail_reasons),
        "workers_started": soak.started,
        "restarts": soak.restarts,
        "unexpected_exits": soak.unexpected_exits,
        "refused_exits": soak.refused_exits,
        "events": soak.events,
        **{k: v for k, v in outcome.items() if k != "recover"},
    }
    return results, numbers


def cleanup(soak: Soak) -> None:
    import optuna

    from ablate.execution.storages import open_storage

    storage = open_storage(soak.url, heartbeat_interval=None, create=False)
    for names in soak.rounds:
        for name in names:
            with contextlib.suppress(KeyError):
                optuna.delete_study(study_name=name, storage=storage)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="chaos.py",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--storage", required=True, help="Storage URL (sqlite, postgresql, mysql, redis, journal).")
    parser.add_argument("--duration", type=float, default=600, help="Seconds of chaos (default 600).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the chaos loop (default 0).")
    parser.add_argument("--workers", type=int, default=4, help="Worker processes (default 4).")
    parser.add_argument("--case", default="T2M1_T1M2", help="Transfer case (default T2M1_T1M2).")
    parser.add_argument("--seeds", type=int, default=2, help="Seeds of each round's ablation (default 2).")
    parser.add_argument("--trials", type=int, default=12, help="Trials of each round's sensitivity study.")
    parser.add_argument("--mean-interval", type=float, default=8.0, help="Mean seconds between faults (default 8).")
    parser.add_argument("--heartbeat", type=int, default=2, help="Workers' heartbeat interval, s (default 2).")
    parser.add_argument("--grace", type=int, default=10, help="Seconds without heartbeat before stale (default 10).")
    parser.add_argument("--drain-timeout", type=float, default=300, help="Seconds to wait for workers to finish.")
    parser.add_argument("--no-chaos", action="store_true", help="The baseline: the same soak without faults.")
    parser.add_argument("--workdir", type=Path, help="Logs, tokens and reports (default: a temporary folder).")
    parser.add_argument("--json", type=Path, help="Write the numbers to this JSON file.")
    parser.add_argument("--keep", action="store_true", help="Keep the studies in the storage afterwards.")
    parser.add_argument(
        "--restart-server",
        action="store_true",
        help="Add the db_restart fault (PostgreSQL, MariaDB): stop and start the database server.",
    )
    parser.add_argument("--restart-down", type=float, default=10.0, help="Seconds the server stays down (10).")
    parser.add_argument("--server-stop", help="Command that stops the server (default: see db_restart below).")
    parser.add_argument("--server-start", help="Command that starts the server (default: see db_restart below).")
    args = parser.parse_args(argv)
    if args.restart_down < 0:
        print("error: --restart-down must be >= 0", file=sys.stderr)
        return 2
    for name in ("duration", "workers", "seeds", "trials", "mean_interval", "heartbeat", "grace"):
        if getattr(args, name) <= 0:
            print(f"error: --{name.replace('_', '-')} must be > 0", file=sys.stderr)
            return 2

    sys.path.insert(0, str(ROOT))
    from ablate.errors import AblateError
    from ablate.execution.storages import check_reachable, parse_storage

    try:
        spec = parse_storage(args.storage)
        if spec.is_server:
            check_reachable(spec)
    except AblateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ablate-chaos-"))
    for sub in ("inject", "taken", "logs", "reports"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    soak = Soak(args, spec.url, spec.kind, workdir, random.Random(args.seed), tag=uuid.uuid4().hex[:6])
    if args.restart_server and not args.no_chaos:
        if spec.kind not in ("postgresql", "mysql"):
            print(f"error: --restart-server needs PostgreSQL or MariaDB, not {spec.kind}", file=sys.stderr)
            return 2
        try:
            soak.server = ServerControl(
                spec.url, spec.kind, args.restart_down, stop=args.server_stop, start=args.server_start
            )
        except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
            print(f"error: --restart-server: this machine does not allow it: {exc}", file=sys.stderr)
            return 2
        print(f"db_restart: {soak.server.describe()}")
    mode = "no chaos (baseline)" if args.no_chaos else f"chaos every ~{args.mean_interval:g} s (seed {args.seed})"
    print(f"soak on {spec.masked()} for {args.duration:g} s, {args.workers} workers, {mode}; logs in {workdir}")

    def _terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # so that the finally below starts a stopped server again

    signal.signal(signal.SIGTERM, _terminate)
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:  # under nohup it stays ignored
        signal.signal(signal.SIGHUP, _terminate)
    try:
        try:
            outcome = soak.run()
        finally:
            if soak.server is not None:
                soak.server.ensure_up()
        results, numbers = check(soak, outcome)
    finally:
        for w in soak.workers:
            w.proc.kill()
        if soak.server is not None:
            soak.server.ensure_up()
        if not args.keep:
            cleanup(soak)
    for ok, line in results:
        print(f"{'PASS' if ok else 'FAIL'} {line}")
    passed = sum(ok for ok, _ in results)
    print(
        f"faults {numbers['faults']}, {numbers['completed']} trials completed, "
        f"{numbers['throughput_per_min']:.1f}/min during the chaos window"
    )
    print(f"{passed} passed, {len(results) - passed} failed")
    if args.json:
        args.json.write_text(
            json.dumps(
                {**numbers, "checks": results, "args": vars(args) | {"json": str(args.json)}}, indent=2, default=str
            )
        )
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
