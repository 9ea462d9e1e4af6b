"""A throw-away OpenSSH server on 127.0.0.1 for the SSH cluster tests.

``SSHServer(tmp)`` writes its own ``sshd_config``, host key and client key pair under ``tmp``
and runs ``sshd -D`` as the current user on a spare port; the machine's sshd configuration and
the user's ``~/.ssh`` are neither read nor changed. ``connect_options()`` is what
``asyncssh.connect`` (and so ``ClusterGridSearch(connect_options=...)``) needs to log in: the
port, the client key, a known_hosts file holding the server's key, and no agent or
``~/.ssh/config``.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

#: Where Debian's openssh-server puts the daemon (not on a normal user's PATH).
SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd")


def find_sshd() -> str | None:
    found = shutil.which("sshd")
    if found:
        return found
    return next((p for p in SSHD_CANDIDATES if os.access(p, os.X_OK)), None)


def parent_pid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: the fields follow the last ')'.
    return int(stat.rsplit(")", 1)[1].split()[1])


def descendants(pid: int) -> list[int]:
    """Every living process below ``pid`` (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            ppid = parent_pid(int(entry))
            if ppid is not None:
                children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def spare_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path) -> Path:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "rustrates-test", "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
    )
    return path


class SSHServer:
    def __init__(self, tmp: Path, sshd: str) -> None:
        self.dir = tmp
        self.sshd = sshd
        self.user = getpass.getuser()
        self.host_key = keygen(tmp / "host_ed25519")
        self.client_key = keygen(tmp / "client_ed25519")
        authorized = tmp / "authorized_keys"
        authorized.write_text((tmp / "client_ed25519.pub").read_text())
        authorized.chmod(0o600)
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.log = tmp / "sshd.log"

    def _config(self) -> Path:
        config = self.dir / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    "ListenAddress 127.0.0.1",
                    f"Port {self.port}",
                    f"HostKey {self.host_key}",
                    f"AuthorizedKeysFile {self.dir / 'authorized_keys'}",
                    f"PidFile {self.dir / 'sshd.pid'}",
                    f"AllowUsers {self.user}",
                    "PermitRootLogin prohibit-password",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    # The keys live in a pytest tmp dir, whose modes sshd would otherwise check.
                    "StrictModes no",
                    "UsePAM no",
                    # Dask opens one connection per scheduler and worker, the checks one per host.
                    "MaxStartups 100",
                    "MaxSessions 100",
                    "LogLevel VERBOSE",
                    "",
                ]
            )
        )
        return config

    def start(self, timeout: float = 20.0) -> None:
        # As root, sshd drops privileges into its compiled-in empty directory, which Debian's
        # service unit (not present here) normally creates.
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        for _attempt in range(3):  # another process may take the spare port first
            self.port = spare_port()
            config = self._config()
            check = subprocess.run([self.sshd, "-t", "-f", str(config)], capture_output=True, text=True)
            if check.returncode != 0:
                raise RuntimeError(f"sshd refuses the test config {config}: {check.stderr.strip()}")
            with open(self.log, "ab") as log:
                self.proc = subprocess.Popen(
                    [self.sshd, "-D", "-e", "-f", str(config)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                        return
                except OSError:
                    time.sleep(0.05)
            self.stop()
        raise RuntimeError(f"sshd did not start on 127.0.0.1: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        """Stops the listener and everything its sessions still run (sshd gives each session
        its own process group, so they are found as its descendants)."""
        if self.proc is None:
            return
        left = descendants(self.proc.pid)
        self.proc.terminate()
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def login_error(self) -> str | None:
        """None when the test key logs in and runs a command; otherwise why not, with the end
        of sshd's log (e.g. an account whose password is locked, which sshd refuses without PAM)."""
        import asyncio  # noqa: PLC0415

        import asyncssh  # noqa: PLC0415

        async def probe() -> int | None:
            async with asyncssh.connect("127.0.0.1", **self.connect_options(), connect_timeout=20) as conn:
                return (await conn.run("true", check=False, timeout=20)).exit_status

        try:
            status = asyncio.run(probe())
        except Exception as exc:  # noqa: BLE001 - reported with the log
            return f"{type(exc).__name__}: {exc}; sshd log: {self.log.read_text()[-600:]}"
        return None if status == 0 else f"`true` exited with {status} (the user's login shell?)"

    def known_hosts(self) -> Path:
        path = self.dir / "known_hosts"
        key = (self.dir / "host_ed25519.pub").read_text().split()
        path.write_text(f"[127.0.0.1]:{self.port} {key[0]} {key[1]}\n")
        return path

    def connect_options(self, client_key: Path | None = None) -> dict[str, Any]:
        return {
            "port": self.port,
            "username": self.user,
            "client_keys": [str(client_key or self.client_key)],
            "known_hosts": str(self.known_hosts()),
            "agent_path": None,  # a developer's agent keys are not offered
            "config": None,  # nor their ~/.ssh/config read
        }
