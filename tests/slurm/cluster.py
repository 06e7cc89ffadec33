"""A single-node SLURM cluster on this machine, from Debian's packages (munge, slurmctld, slurmd, slurm-client).

munged, slurmctld and slurmd run as children of this process, on free ports, with every file they use
(configuration, munge key and socket, state, logs) in one folder: nothing of the machine's own setup is
read or changed. The node is this machine as `slurmd -C` describes it (hostname, CPUs, memory), with
two GPUs whose device files are /dev/null, so that SLURM hands GPUs to jobs and sets their
CUDA_VISIBLE_DEVICES without any hardware. Accounting is off (no slurmdbd): job states come from
squeue, and finished jobs stay listed for an hour. SLURM commands find the cluster through SLURM_CONF;
Snakemake's job step drops SLURM_* variables before it calls srun, so srun is wrapped by a script,
first on PATH, that sets it again (a real cluster's srun reads /etc/slurm/slurm.conf).
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

PACKAGES = "munge slurmctld slurmd slurm-client"
PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "srun", "squeue", "sinfo", "scontrol", "scancel")
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
PARTITION = "local"
GPUS = 2
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
COMMAND_TIMEOUT_S = 30.0


def missing_requirements() -> list[str]:
    """What this machine lacks to run the cluster (empty when nothing)."""
    programs = [name for name in PROGRAMS if shutil.which(name, path=SEARCH_PATH) is None]
    missing = [f"{', '.join(programs)} (Debian packages: {PACKAGES})"] if programs else []
    if os.geteuid() != 0:
        missing.append("root (slurmd starts every job as its user)")
    return missing


def program(name: str) -> str:
    """The path of a program, found in /usr/sbin and /sbin too (the daemons' folders)."""
    return shutil.which(name, path=SEARCH_PATH) or name


def free_ports(count: int) -> list[int]:
    """`count` different TCP ports that nothing listens on now."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def this_node() -> dict[str, str]:
    """This machine as a SLURM node: the fields of `slurmd -C` (NodeName, CPUs, ..., RealMemory)."""
    out = subprocess.run([program("slurmd"), "-C"], capture_output=True, text=True, check=True, timeout=COMMAND_TIMEOUT_S)
    return dict(item.split("=", 1) for item in out.stdout.splitlines()[0].split())


def slurm_conf(folder: Path, node: dict[str, str], ctld_port: int, slurmd_port: int) -> str:
    user = getpass.getuser()
    node_fields = " ".join(f"{key}={value}" for key, value in node.items())
    return f"""\
ClusterName=local
SlurmctldHost={node["NodeName"]}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser={user}
SlurmdUser={user}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={folder}/munge.socket
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
MinJobAge=3600
KillWait=5
MailProg=/bin/true
GresTypes=gpu
{node_fields} NodeAddr=127.0.0.1 Gres=gpu:{GPUS} State=UNKNOWN
PartitionName={PARTITION} Nodes={node["NodeName"]} Default=YES MaxTime=INFINITE State=UP
"""


def gres_conf(folder: Path, node: dict[str, str]) -> str:
    return f"AutoDetect=off\nNodeName={node['NodeName']} Name=gpu File={folder}/gpu[0-{GPUS - 1}]\n"


@dataclass
class LocalSlurm:
    """A running cluster: its folder, its node (`slurmd -C`'s fields) and its daemons by name."""

    folder: Path
    node: dict[str, str]
    daemons: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def partition(self) -> str:
        return PARTITION

    @property
    def cpus(self) -> int:
        return int(self.node["CPUs"])

    @property
    def memory_mb(self) -> int:
        return int(self.node["RealMemory"])

    @property
    def env(self) -> dict[str, str]:
        """This process's environment for SLURM commands of this cluster: SLURM_CONF points at it and
        no variable of an enclosing SLURM job is left; srun is the wrapper that sets SLURM_CONF."""
        outside = {key: value for key, value in os.environ.items() if not key.startswith("SLURM_")}
        path = os.pathsep.join([str(self.folder / "bin"), os.environ.get("PATH", "")])
        return outside | {"SLURM_CONF": str(self.folder / "slurm.conf"), "PATH": path}

    def run(self, name: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([program(name), *args], capture_output=True, text=True, env=self.env, timeout=COMMAND_TIMEOUT_S)

    def command(self, name: str, *args: str) -> str:
        """The output of a SLURM command on this cluster."""
        proc = self.run(name, *args)
        if proc.returncode != 0:
            raise RuntimeError(f"{name} {' '.join(args)} failed on the local SLURM cluster:\n{proc.stderr}")
        return proc.stdout

    def jobs(self) -> list[dict[str, str]]:
        """Every job of the cluster, queued, running or finished, as the fields of `scontrol show job`."""
        lines = self.command("scontrol", "show", "job", "--oneliner").splitlines()
        return [dict(item.split("=", 1) for item in line.split() if "=" in item) for line in lines if line.startswith("JobId=")]

    def node_state(self) -> str:
        """The node's state as sinfo reports it ("idle", "mixed", ...); empty while slurmctld does not answer."""
        return self.run("sinfo", "--noheader", "--nodes", self.node["NodeName"], "--format=%T").stdout.strip()

    def start_daemon(self, name: str, *args: str) -> None:
        with open(self.folder / f"{name}.out", "w") as output:
            self.daemons[name] = subprocess.Popen([program(name), *args], stdout=output, stderr=subprocess.STDOUT, env=self.env)

    def running(self, *names: str) -> bool:
        return all(name in self.daemons and self.daemons[name].poll() is None for name in names)

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = START_TIMEOUT_S) -> None:
        """Wait until `condition()` holds; fail with the daemons' logs if a daemon exits or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while not condition():
            exited = [name for name, daemon in self.daemons.items() if daemon.poll() is not None]
            if exited or time.monotonic() > deadline:
                reason = f"{', '.join(exited)} exited" if exited else f"not within {timeout:.0f} s"
                raise RuntimeError(f"local SLURM cluster in {self.folder}: waited for {what}, {reason}\n{self.log_tails()}")
            time.sleep(0.2)

    def log_tails(self, lines: int = 15) -> str:
        logs = sorted(self.folder.glob("*.log")) + sorted(self.folder.glob("*.out"))
        return "\n".join(f"--- {log.name}:\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) for log in logs)

    def stop(self) -> None:
        """Cancel every job that has not ended, then stop slurmd, slurmctld and munged."""
        try:
            if self.running("munged", "slurmctld", "slurmd"):
                self.command("scancel", "--user", getpass.getuser())
                self.wait_for(lambda: not self.command("squeue", "--noheader"), "the cancelled jobs to end", STOP_TIMEOUT_S)
        finally:
            for daemon in reversed(self.daemons.values()):
                daemon.terminate()
                try:
                    daemon.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    daemon.kill()
                    daemon.wait()


def write_srun_wrapper(folder: Path) -> None:
    """folder/bin/srun: srun with SLURM_CONF set to this cluster's configuration."""
    wrapper = folder / "bin" / "srun"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\nSLURM_CONF={folder}/slurm.conf exec {program("srun")} "$@"\n')
    wrapper.chmod(0o755)


def start_cluster(folder: Path) -> LocalSlurm:
    """Start munged, slurmctld and slurmd with their files in `folder`; returns once the node is idle."""
    node = this_node()
    cluster = LocalSlurm(folder, node)
    for sub in ("state", "spool"):
        (folder / sub).mkdir(parents=True)
    key = folder / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    for gpu in range(GPUS):
        (folder / f"gpu{gpu}").symlink_to("/dev/null")
    (folder / "slurm.conf").write_text(slurm_conf(folder, node, *free_ports(2)))
    (folder / "gres.conf").write_text(gres_conf(folder, node))
    write_srun_wrapper(folder)
    try:
        cluster.start_daemon(
            "munged",
            "--foreground",
            "--force",  # accept a socket in a folder others cannot enter (pytest's), with a warning
            f"--key-file={key}",
            f"--socket={folder}/munge.socket",
            f"--pid-file={folder}/munged.pid",
            f"--log-file={folder}/munged.log",
            f"--seed-file={folder}/munged.seed",
        )
        cluster.wait_for((folder / "munge.socket").exists, "munged's socket")
        cluster.start_daemon("slurmctld", "-D", "-f", str(folder / "slurm.conf"))
        cluster.start_daemon("slurmd", "-D", "-f", str(folder / "slurm.conf"))
        cluster.wait_for(lambda: cluster.node_state() == "idle", f"node {node['NodeName']} to be idle")
    except BaseException:
        cluster.stop()
        raise
    return cluster
