"""A real OpenSSH ``sshd`` per simulated server, and the keys that let opsconsole in strictly.

Called by :class:`opsconsole.lab.Lab` at start.  Follows LAB-NOTES: absolute path to sshd,
``/run/sshd`` for a root sshd, ``StrictModes no`` (lab dirs may sit under /tmp), generous
``MaxStartups``/``MaxSessions``, and ``SetEnv HOME=`` so remote commands skip the machine's rc
files.
Every key is generated per lab; the ``known_hosts`` written here is the only way in.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

import asyncssh

from .model import LabError, Layout
from .procs import ProcRecord, free_ports, log_tail, spawn, wait_started

SFTP_SERVER = Path("/usr/lib/openssh/sftp-server")


def _write_private(path: Path, data: bytes) -> None:
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _new_key(path: Path, comment: str) -> bytes:
    """Write a fresh ed25519 private key (mode 0600) and its ``.pub``; return the public line."""
    key = asyncssh.generate_private_key("ssh-ed25519", comment=comment)
    _write_private(path, key.export_private_key())
    public: bytes = key.export_public_key("openssh")
    Path(f"{path}.pub").write_bytes(public)
    return public


def write_client_key(layout: Layout, user: str) -> None:
    """The lab's one client key, and the authorized_keys every lab sshd reads."""
    layout.ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    public = _new_key(layout.client_key, f"{user}@opsconsole-lab")
    layout.authorized_keys.write_bytes(public)


def _render_config(layout: Layout, server: str, port: int, user: str) -> str:
    d = layout.sshd_dir(server)
    lines = [
        f"# sshd of the opsconsole rehearsal lab, server {server}. Written by opsconsole lab up.",
        f"ListenAddress 127.0.0.1:{port}",
        f"HostKey {d / 'host_ed25519_key'}",
        f"PidFile {d / 'sshd.pid'}",
        f"AuthorizedKeysFile {layout.authorized_keys}",
        f"AllowUsers {user}",
        "StrictModes no",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "PermitRootLogin prohibit-password",
        "MaxStartups 100:30:200",
        "MaxSessions 50",
        f"SetEnv HOME={layout.home}",
        "PrintMotd no",
        "PrintLastLog no",
        "X11Forwarding no",
        "LogLevel INFO",
    ]
    if SFTP_SERVER.exists():
        lines.append(f"Subsystem sftp {SFTP_SERVER}")
    return "\n".join(lines) + "\n"


def ensure_privsep_dir() -> None:
    """sshd started as root needs /run/sshd (mode 0755); nothing else creates it without systemd."""
    if os.geteuid() != 0:
        return
    path = Path("/run/sshd")
    try:
        path.mkdir(mode=0o755, parents=True, exist_ok=True)
        path.chmod(0o755)
    except OSError as e:
        raise LabError(f"sshd needs the directory /run/sshd (mode 0755): {e.strerror}") from None


def start_sshd(
    layout: Layout, server: str, user: str, sshd: str, *, attempts: int = 3
) -> tuple[ProcRecord, subprocess.Popen[bytes], int]:
    """Start ``server``'s sshd on a free loopback port; return its record, handle and port.

    Returns once sshd has written its PID file, which it does only after binding the port.  A port
    taken between choosing and binding it is retried on another one.
    """
    ensure_privsep_dir()
    d = layout.sshd_dir(server)
    d.mkdir(parents=True, exist_ok=True)
    _new_key(d / "host_ed25519_key", f"{server}.opsconsole-lab")
    log = d / "sshd.log"
    pid_file = d / "sshd.pid"
    for attempt in range(attempts):
        port = free_ports(1)[0]
        config = d / "sshd_config"
        config.write_text(_render_config(layout, server, port, user))
        pid_file.unlink(missing_ok=True)
        argv = [sshd, "-D", "-f", str(config), "-E", str(log)]
        check = subprocess.run(
            [sshd, "-t", "-f", str(config)], capture_output=True, text=True, check=False
        )
        if check.returncode != 0:
            message = check.stderr.strip().replace("\n", " | ")
            raise LabError(f"sshd of {server} refused its lab config {config}: {message}")
        record, popen = spawn(f"sshd of {server}", argv, output=d / "sshd.out")
        try:
            wait_started(
                f"sshd of {server}",
                popen,
                pid_file=pid_file,
                log=log,
            )
        except LabError:
            if attempt + 1 < attempts and "Address already in use" in log_tail(log, 20):
                continue
            raise
        return record, popen, port
    raise AssertionError("unreachable")


def host_public_key(layout: Layout, server: str) -> str:
    """The ``ssh-ed25519 AAAA…`` part of a server's host key (the comment left out)."""
    text = (layout.sshd_dir(server) / "host_ed25519_key.pub").read_text()
    return " ".join(text.split()[:2])


def write_known_hosts(layout: Layout, ports: Mapping[str, int]) -> None:
    lines = [f"[127.0.0.1]:{port} {host_public_key(layout, s)}" for s, port in ports.items()]
    layout.known_hosts.write_text("\n".join(lines) + "\n")


def write_ssh_config(layout: Layout, ports: Mapping[str, int], user: str) -> None:
    """An OpenSSH client config so that an operator can ``ssh -F <lab>/ssh/config web1``."""
    blocks = []
    for server, port in ports.items():
        blocks.append(
            f"Host {server}\n"
            f"    HostName 127.0.0.1\n"
            f"    Port {port}\n"
            f"    User {user}\n"
            f"    IdentityFile {layout.client_key}\n"
            f"    IdentitiesOnly yes\n"
            f"    UserKnownHostsFile {layout.known_hosts}\n"
            f"    StrictHostKeyChecking yes\n"
        )
    layout.ssh_config.write_text("\n".join(blocks))


def find_sshd() -> str | None:
    """Absolute path of sshd (it refuses to start from a relative one), or None."""
    for candidate in ("/usr/sbin/sshd", "/usr/local/sbin/sshd"):
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which(
        "sshd", path="/usr/sbin:/usr/local/sbin:/sbin:" + os.environ.get("PATH", "")
    )
