#!/usr/bin/env python3
"""A real one-node SLURM cluster on loopback, for tests and for trying the SLURM profile by hand.

Everything lives under one directory (a fresh temporary one by default): the configuration
(slurm.conf, slurmdbd.conf, the munge key), sockets, PID files, logs, spool and state directories and,
in the accounting mode, a MariaDB data directory, on ports picked free on loopback. Nothing is written
under /etc, /run or /var, so a cluster started here does not disturb a system SLURM or munge, with one
exception: /etc/slurm/slurm.conf becomes a symbolic link to this cluster's slurm.conf while it runs
(only if that path is free, or a link left by an earlier run of this script; removed by `stop`). Client commands
here find the configuration through SLURM_CONF, but snakemake-executor-plugin-slurm-jobstep 0.6.1
removes every SLURM_* variable but a few job identifiers before it calls `srun` inside a job, so that
srun reads the default path, as on a real cluster (or fails with "DNS SRV lookup failed").

Daemons, in start order, each run in the foreground (-D / -F) as a child in its own session:
    munged                                     authentication (socket under <dir>/run)
    mariadbd, slurmdbd   (accounting=slurmdbd) job accounting: what `sacct` reads, as on real clusters
    slurmctld, slurmd                          the controller and the one compute node (`hostname -s`)
Their PIDs are recorded in <dir>/run/pids.json; `stop` cancels any job still queued or running, then
sends SIGTERM to each daemon by PID in reverse order (SIGKILL after a grace period), checking first
that the PID still runs the program it recorded.

accounting=none runs no database: `sacct` then fails ("accounting storage is disabled") and
snakemake-executor-plugin-slurm must be told `--slurm-status-command squeue`.

Needs Debian's slurm-wlm and munge (and slurmdbd + mariadb-server for accounting=slurmdbd), installed by
ci/install-test-deps.sh, and root (SlurmUser=root, jobs run as the submitting user). Standard library only.

    python3 ci/slurm/cluster.py start [--dir DIR] [--accounting slurmdbd|none]   # prints DIR and SLURM_CONF
    export SLURM_CONF=DIR/etc/slurm.conf; sinfo; sbatch ...; sacct ...
    python3 ci/slurm/cluster.py stop --dir DIR
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_CONF = Path("/etc/slurm/slurm.conf")
LINK_MARK = "rpm-slurm-"  # cluster directories made by this script start with this
CLUSTER_NAME = "rpmci"
PARTITION = "debug"
DB_NAME = "slurm_acct_db"
DB_USER = "slurm"


class ClusterError(RuntimeError):
    pass


def _free_ports(n: int) -> list[int]:
    """n distinct TCP ports free on loopback right now."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _alive(pid: int) -> bool:
    """True if pid runs and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _which(prog: str) -> str:
    for d in (os.environ.get("PATH", "").split(os.pathsep) + ["/usr/sbin", "/sbin", "/usr/bin"]):
        p = Path(d) / prog
        if d and p.is_file() and os.access(p, os.X_OK):
            return str(p)
    raise ClusterError(f"{prog} not found: install the Debian packages with ci/install-test-deps.sh")


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise ClusterError("cannot read MemTotal from /proc/meminfo")


class LocalSlurm:
    """A one-node SLURM cluster under `root`. Use as a context manager, or start() / stop()."""

    def __init__(self, root: str | os.PathLike | None = None, accounting: str = "slurmdbd",
                 start_timeout: float = 60.0):
        if accounting not in ("slurmdbd", "none"):
            raise ValueError(f"accounting must be 'slurmdbd' or 'none', not {accounting!r}")
        self.root = (Path(root) if root else Path(tempfile.mkdtemp(prefix=LINK_MARK))).resolve()
        self.accounting = accounting
        self.start_timeout = start_timeout
        self.etc, self.run, self.log = self.root / "etc", self.root / "run", self.root / "log"
        self.spool = self.root / "spool"
        self.conf = self.etc / "slurm.conf"
        self.node = socket.gethostname().split(".")[0]
        self._procs: dict[str, subprocess.Popen] = {}
        self.pids: dict[str, dict] = {}  # name -> {"pid": int, "exe": str}
        self.timings: dict[str, float] = {}

    # ---- environment for client commands (sbatch, squeue, sacct, snakemake) ----
    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["SLURM_CONF"] = str(self.conf)
        for var in [v for v in env if v.startswith(("SLURM_", "SBATCH_", "SRUN_", "SALLOC_")) and v != "SLURM_CONF"]:
            del env[var]
        return env

    def cmd(self, *args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        """Run a SLURM client command against this cluster."""
        proc = subprocess.run(list(args), env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise ClusterError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
        return proc

    # ---- configuration ----
    def _write_configs(self) -> None:
        for d in (self.etc, self.run, self.log, self.spool / "ctld", self.spool / "d"):
            d.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)  # jobs run as the submitting user; munged wants no group/other writes
        self.ctld_port, self.d_port, self.dbd_port, self.db_port = _free_ports(4)
        self.munge_socket = self.run / "munge.socket"
        key = self.etc / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        self.db_password = os.urandom(12).hex()

        cpus = os.cpu_count() or 1
        mem = _memory_mb()
        # Leave some memory to the daemons; jobs asking for more than this are refused at submission.
        real_memory = max(1024, mem - 1024)
        auth = f"AuthType=auth/munge\nAuthInfo=socket={self.munge_socket}\n"
        if self.accounting == "slurmdbd":
            acct = (f"AccountingStorageType=accounting_storage/slurmdbd\nAccountingStorageHost=localhost\n"
                    f"AccountingStoragePort={self.dbd_port}\n"
                    # With slurmdbd, AccountingStoragePass names the munge socket to use.
                    f"AccountingStoragePass={self.munge_socket}\nJobAcctGatherType=jobacct_gather/linux\n"
                    # sacct then shows the plugin's --comment, which names the rule and wildcards.
                    "JobAcctGatherFrequency=30\nAccountingStoreFlags=job_comment\n")
        else:
            acct = "AccountingStorageType=accounting_storage/none\nJobAcctGatherType=jobacct_gather/none\n"
        self.conf.write_text(
            f"# One-node test cluster written by ci/slurm/cluster.py (accounting={self.accounting}).\n"
            f"ClusterName={CLUSTER_NAME}\n"
            f"SlurmctldHost={self.node}(127.0.0.1)\n"
            f"SlurmctldPort={self.ctld_port}\nSlurmdPort={self.d_port}\n"
            f"{auth}CredType=cred/munge\n"
            "SlurmUser=root\nSlurmdUser=root\n"
            f"StateSaveLocation={self.spool / 'ctld'}\nSlurmdSpoolDir={self.spool / 'd'}\n"
            f"SlurmctldPidFile={self.run / 'slurmctld.pid'}\nSlurmdPidFile={self.run / 'slurmd.pid'}\n"
            f"SlurmctldLogFile={self.log / 'slurmctld.log'}\nSlurmdLogFile={self.log / 'slurmd.log'}\n"
            # No systemd, no cgroups in a container or a CI VM: track processes through /proc.
            "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n"
            "SelectType=select/cons_tres\nSelectTypeParameters=CR_Core_Memory\n"
            "SchedulerType=sched/backfill\nMpiDefault=none\nReturnToService=2\n"
            "MailProg=/bin/true\nJobCompType=jobcomp/none\n"
            # Finished jobs stay visible to squeue for 5 minutes (the plugin's squeue mode needs >= 120 s).
            "MinJobAge=300\nKillWait=5\nInactiveLimit=0\nSlurmctldTimeout=30\nSlurmdTimeout=60\n"
            f"{acct}"
            f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={real_memory} State=UNKNOWN\n"
            f"PartitionName={PARTITION} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP\n"
        )
        if self.accounting == "slurmdbd":
            dbd = self.etc / "slurmdbd.conf"
            dbd.write_text(
                "# Written by ci/slurm/cluster.py\n"
                f"{auth}"
                f"DbdHost=localhost\nDbdAddr=127.0.0.1\nDbdPort={self.dbd_port}\nSlurmUser=root\n"
                f"PidFile={self.run / 'slurmdbd.pid'}\nLogFile={self.log / 'slurmdbd.log'}\n"
                "StorageType=accounting_storage/mysql\n"
                f"StorageHost=127.0.0.1\nStoragePort={self.db_port}\nStorageUser={DB_USER}\n"
                f"StoragePass={self.db_password}\nStorageLoc={DB_NAME}\n"
            )
            os.chmod(dbd, 0o600)  # slurmdbd refuses a slurmdbd.conf others can read

    def _link_default_conf(self) -> None:
        """/etc/slurm/slurm.conf -> our slurm.conf, for `srun` inside jobs (see the module docstring)."""
        link = DEFAULT_CONF
        if link.is_symlink():
            target = os.readlink(link)
            if LINK_MARK not in target and not target.startswith(str(self.root)):
                raise ClusterError(f"{link} is a link to {target}, not made by this script: not touching it")
            link.unlink()  # a link left by an earlier (killed) run of this script
        elif link.exists():
            raise ClusterError(f"{link} exists (a real SLURM configuration?): not touching it; the nested srun "
                               "of snakemake-executor-plugin-slurm-jobstep needs the cluster's slurm.conf there")
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(self.conf)
        self.pids["_conf_link"] = {"pid": -1, "exe": str(link)}
        self._save_pids()

    def _unlink_default_conf(self) -> None:
        entry = self.pids.pop("_conf_link", None)
        if entry is None:
            return
        link = Path(entry["exe"])
        if link.is_symlink() and os.readlink(link) == str(self.conf):
            link.unlink()
        self._save_pids()

    # ---- daemons ----
    def _spawn(self, name: str, argv: list[str], env: dict | None = None) -> None:
        out = open(self.log / f"{name}.out", "ab")
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env=env or self.env, cwd=self.root, start_new_session=True)
        out.close()
        self._procs[name] = proc
        self.pids[name] = {"pid": proc.pid, "exe": os.path.basename(argv[0])}
        self._save_pids()

    def _save_pids(self) -> None:
        (self.run / "pids.json").write_text(json.dumps(self.pids, indent=1))

    def _wait(self, name: str, ready, what: str, key: str | None = None) -> None:
        t0 = time.monotonic()
        deadline = t0 + self.start_timeout
        while time.monotonic() < deadline:
            pid = self.pids.get(name, {}).get("pid")
            if pid is not None and not _alive(pid):
                raise ClusterError(f"{name} exited while starting ({what}):\n{self._log_tail(name)}")
            if ready():
                self.timings[key or name] = round(time.monotonic() - t0, 2)
                return
            time.sleep(0.1)
        raise ClusterError(f"{name}: {what} not reached within {self.start_timeout:.0f} s:\n{self._log_tail(name)}")

    def _log_tail(self, name: str, lines: int = 30) -> str:
        text = ""
        for f in sorted(self.log.glob(f"{name}*")):
            text += f"--- {f}\n" + "\n".join(f.read_text(errors="replace").splitlines()[-lines:]) + "\n"
        return text or f"(no log for {name} under {self.log})"

    def _start_munged(self) -> None:
        self._spawn("munged", [_which("munged"), "-F", "--force", f"--socket={self.munge_socket}",
                               f"--key-file={self.etc / 'munge.key'}", f"--pid-file={self.run / 'munged.pid'}",
                               f"--log-file={self.log / 'munged.log'}", f"--seed-file={self.run / 'munged.seed'}"])
        self._wait("munged", self.munge_socket.exists, f"socket {self.munge_socket}")

    def _mysql(self, sql: str) -> None:
        subprocess.run([_which("mariadb"), "--no-defaults", f"--socket={self.run / 'mysqld.sock'}", "-uroot",
                        "-e", sql], check=True, capture_output=True, text=True, timeout=30)

    def _start_mariadb(self) -> None:
        datadir = self.root / "mysql"
        t0 = time.monotonic()
        init = subprocess.run(
            [_which("mariadb-install-db"), "--no-defaults", f"--datadir={datadir}", "--user=root",
             "--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve"],
            capture_output=True, text=True, timeout=120)
        if init.returncode != 0:
            raise ClusterError(f"mariadb-install-db failed:\n{init.stdout}{init.stderr}")
        self.timings["mariadb-install-db"] = round(time.monotonic() - t0, 2)
        self._spawn("mariadbd", [
            _which("mariadbd"), "--no-defaults", f"--datadir={datadir}", "--user=root",
            "--bind-address=127.0.0.1", f"--port={self.db_port}", f"--socket={self.run / 'mysqld.sock'}",
            f"--pid-file={self.run / 'mariadbd.pid'}", f"--log-error={self.log / 'mariadbd.log'}",
            "--skip-name-resolve", "--skip-log-bin", "--innodb-buffer-pool-size=64M",
            # slurmdbd's recommended settings (SLURM accounting docs)
            "--innodb-log-file-size=64M", "--innodb-lock-wait-timeout=900"])
        self._wait("mariadbd", lambda: _port_open(self.db_port), f"port {self.db_port}")
        self._mysql(f"CREATE USER '{DB_USER}'@'127.0.0.1' IDENTIFIED BY '{self.db_password}'; "
                    f"GRANT ALL ON {DB_NAME}.* TO '{DB_USER}'@'127.0.0.1'; FLUSH PRIVILEGES;")

    def _start_slurmdbd(self) -> None:
        self._spawn("slurmdbd", [_which("slurmdbd"), "-D"])
        # slurmctld dies if it starts before slurmdbd listens.
        self._wait("slurmdbd", lambda: _port_open(self.dbd_port), f"port {self.dbd_port}")

    def _start_slurmctld(self) -> None:
        self._spawn("slurmctld", [_which("slurmctld"), "-D", "-f", str(self.conf)])
        self._wait("slurmctld", lambda: self.cmd("scontrol", "ping", check=False).stdout.find("UP") >= 0,
                   "scontrol ping: UP")

    def _start_slurmd(self) -> None:
        self._spawn("slurmd", [_which("slurmd"), "-D", "-f", str(self.conf)])

        def idle():
            out = self.cmd("sinfo", "-h", "-N", "-o", "%T", check=False).stdout.strip()
            return out.startswith("idle")
        self._wait("slurmd", idle, f"node {self.node} idle in sinfo")

    def _wait_accounting(self) -> None:
        def registered():
            out = self.cmd("sacctmgr", "-n", "-P", "list", "cluster", "format=cluster", check=False).stdout
            return CLUSTER_NAME in out.split()
        self._wait("slurmctld", registered, f"cluster {CLUSTER_NAME} registered in slurmdbd", key="registration")

    def start(self) -> "LocalSlurm":
        t0 = time.monotonic()
        try:
            self._write_configs()
            self._link_default_conf()
            self._start_munged()
            if self.accounting == "slurmdbd":
                self._start_mariadb()
                self._start_slurmdbd()
            self._start_slurmctld()
            self._start_slurmd()
            if self.accounting == "slurmdbd":
                self._wait_accounting()
        except BaseException:
            self.stop()
            raise
        self.timings["total"] = round(time.monotonic() - t0, 2)
        return self

    # ---- stopping ----
    def _cancel_jobs(self) -> None:
        if "slurmctld" not in self.pids or not _alive(self.pids["slurmctld"]["pid"]):
            return
        try:
            ids = self.cmd("squeue", "-h", "-t", "PENDING,RUNNING,CONFIGURING,COMPLETING,SUSPENDED",
                           "-o", "%i", check=False, timeout=15).stdout.split()
            if ids:
                self.cmd("scancel", *ids, check=False, timeout=15)
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline and self.cmd(
                        "squeue", "-h", "-o", "%i", "-t", "PENDING,RUNNING,COMPLETING", check=False).stdout.strip():
                    time.sleep(0.5)
        except (subprocess.TimeoutExpired, OSError):
            pass

    def _stop_one(self, name: str, grace: float = 20.0) -> None:
        entry = self.pids.get(name)
        if not entry:
            return
        pid, exe = entry["pid"], entry["exe"]
        proc = self._procs.get(name)
        argv0 = os.path.basename(_cmdline(pid)[0]) if _alive(pid) else ""
        if _alive(pid) and argv0 == exe:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while _alive(pid) and time.monotonic() < deadline:
                if proc is not None and proc.poll() is not None:
                    break
                time.sleep(0.1)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
                time.sleep(0.2)
        if proc is not None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        del self.pids[name]
        self._procs.pop(name, None)
        self._save_pids()

    def stop(self) -> None:
        if not self.pids and (self.run / "pids.json").exists():
            self.pids = json.loads((self.run / "pids.json").read_text())
        if not self.pids:
            return
        self._cancel_jobs()
        for name in ("slurmd", "slurmctld", "slurmdbd", "mariadbd", "munged"):
            self._stop_one(name)
        self._unlink_default_conf()

    def still_running(self) -> list[str]:
        return [n for n, e in self.pids.items() if e["pid"] > 0 and _alive(e["pid"])]

    def __enter__(self) -> "LocalSlurm":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="action", required=True)
    s = sub.add_parser("start", help="start a cluster; prints its directory and SLURM_CONF")
    s.add_argument("--dir", help="directory for the cluster's files (default: a new temporary one)")
    s.add_argument("--accounting", choices=("slurmdbd", "none"), default="slurmdbd")
    t = sub.add_parser("stop", help="stop the daemons of the cluster in DIR, by PID")
    t.add_argument("--dir", required=True)
    t.add_argument("--remove", action="store_true", help="also delete DIR")
    args = ap.parse_args(argv)
    if args.action == "start":
        c = LocalSlurm(args.dir, accounting=args.accounting).start()
        print(f"cluster dir: {c.root}")
        print(f"daemons: {json.dumps({n: e['pid'] for n, e in c.pids.items() if not n.startswith('_')})}")
        print(f"started in {c.timings['total']} s: {c.timings}")
        print(f"export SLURM_CONF={c.conf}")
        return 0
    c = LocalSlurm(args.dir)
    c.stop()
    if args.remove:
        shutil.rmtree(c.root, ignore_errors=True)
    print(f"stopped the daemons of {c.root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
