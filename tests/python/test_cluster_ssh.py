"""ClusterGridSearch on SSH hosts (issue 8), against a real OpenSSH server.

The session's ``sshd`` fixture runs Debian's ``sshd`` on 127.0.0.1 with throw-away keys
(``ssh_server.py``); ``ClusterGridSearch(['127.0.0.1', ...])`` logs in through it, so the Dask
scheduler and workers are processes of sshd sessions. As in ``test_cluster.py`` the reference
is ``grid_search`` on the same sweep in this process, and equality is exact.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from pathlib import Path

import pytest

from conftest import CI, unavailable

try:
    import asyncssh  # noqa: F401
    import dask.distributed  # noqa: F401
except ImportError:  # pragma: no cover - exercised only where they are missing
    if CI:
        raise
    pytest.skip(
        "dask[distributed] and asyncssh are not installed (pip install 'rustrates[cluster]')", allow_module_level=True
    )

import rustrates
from rustrates import ClusterGridSearch
from rustrates.cluster import ClusterConnectionError
from ssh_server import SSHServer, find_sshd, keygen, parent_pid, spare_port
from test_cluster import assert_same, manifest_chunks, reference, seed_sweep, slow_sweep

pytestmark = [pytest.mark.cluster, pytest.mark.filterwarnings("ignore::rustrates.RustratesWarning")]

HOST = "127.0.0.1"


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    path = find_sshd()
    if path is None:
        message = (
            "OpenSSH's sshd is not installed: apt-get install openssh-server "
            "(scripts/setup.sh --python does it as root)"
        )
        unavailable(message)
    server = SSHServer(tmp_path_factory.mktemp("sshd"), path)
    server.start()
    problem = server.login_error()
    if problem is not None:
        server.stop()
        message = f"cannot log in to the test sshd as {server.user}: {problem}"
        unavailable(message)
    yield server
    server.stop()


def ssh_search(sshd, n_hosts: int, compute_dir: Path) -> ClusterGridSearch:
    # Dask would listen on (and announce) the machine's own address: loopback is enough here.
    loopback = {"scheduler_options": {"host": HOST}, "worker_options": {"host": HOST}}
    return ClusterGridSearch(
        [HOST] * n_hosts,
        compute_dir=compute_dir,
        worker_env=sys.executable,
        connect_options=sshd.connect_options(),
        progress=False,
        cluster_kwargs=loopback,
    )


def ancestors(pid: int) -> list[int]:
    out = []
    while (pid := parent_pid(pid)) not in (None, 0, 1):
        out.append(pid)
    return out


def test_ssh_single_host_sweep_equals_grid_search_bit_for_bit(sshd, tmp_path):
    sweep = seed_sweep()
    ref, ref_map = reference(sweep)
    # One host alone is listed twice by ClusterGridSearch: the scheduler and one worker.
    with ssh_search(sshd, 1, tmp_path / "cd") as cgs:
        path = cgs.run(chunk_size=5, **sweep)
        assert cgs.last_run == {"chunks": 3, "skipped": 0, "computed": 3, "failed": 0}
        workers = cgs.client.run(os.getpid)
        assert len(workers) == 1
        # The worker is a process of an sshd session: it went through the SSH login.
        for address, pid in workers.items():
            assert address.startswith(f"tcp://{HOST}:")
            assert sshd.proc.pid in ancestors(pid)
    assert_same(path, ref, ref_map)


def test_ssh_worker_host_killed_mid_sweep_completes_identical(sshd, tmp_path):
    sweep = slow_sweep()
    ref, ref_map = reference(sweep)
    compute_dir = tmp_path / "cd"
    # Scheduler plus two worker hosts; one of them dies with its whole SSH session.
    with ssh_search(sshd, 3, compute_dir) as cgs:
        client = cgs.client
        worker_pids = client.run(os.getpid)
        assert len(worker_pids) == 2
        victim_addr, victim = sorted(worker_pids.items())[0]
        nanny = parent_pid(victim)
        session = parent_pid(nanny)
        # The session's sshd process (below the listener), its Dask nanny, and the worker.
        assert sshd.proc.pid in ancestors(session)
        box: dict = {}
        runner = threading.Thread(target=lambda: box.setdefault("path", cgs.run(chunk_size=2, **sweep)))
        runner.start()
        deadline = time.monotonic() + 60
        while len(manifest_chunks(compute_dir)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        done_at_kill = len(manifest_chunks(compute_dir))
        for pid in (session, nanny, victim):
            os.kill(pid, signal.SIGKILL)
        runner.join(120)
        assert not runner.is_alive()
        assert 2 <= done_at_kill < 12, "the kill must land while chunks were still to run"
        assert victim_addr not in client.scheduler_info()["workers"]
    assert_same(box["path"], ref, ref_map)
    assert sorted(manifest_chunks(compute_dir)) == list(range(12)), "every chunk recorded once"


# ---------------------------------------------------------------------------------------
# clear errors, raised by the check that logs in before Dask is started


def test_ssh_unreachable_host_is_named(sshd, tmp_path):
    port = spare_port()  # closed again: nothing listens there
    options = dict(sshd.connect_options(), port=port)
    cgs = ClusterGridSearch(
        [HOST, HOST], compute_dir=tmp_path / "cd", worker_env=sys.executable, connect_options=options, progress=False
    )
    with pytest.raises(
        ClusterConnectionError,
        match=rf"cannot reach SSH host 127\.0\.0\.1 port {port} \(ConnectionRefusedError.*"
        r"check the host name, that sshd runs there",
    ):
        cgs.run(chunk_size=6, **seed_sweep())
    assert not (tmp_path / "cd").exists(), "nothing is prepared before the hosts answered"


def test_ssh_silent_host_times_out_named(sshd):
    # A port that accepts the connection but never speaks SSH: a host that hangs.
    with socket.socket() as silent:
        silent.bind((HOST, 0))
        silent.listen()
        port = silent.getsockname()[1]
        cgs = ClusterGridSearch(
            [HOST],
            worker_env=sys.executable,
            connect_timeout=1,
            connect_options=dict(sshd.connect_options(), port=port),
            progress=False,
        )
        with pytest.raises(
            ClusterConnectionError, match=rf"cannot reach SSH host 127\.0\.0\.1 port {port} \(no answer within 1 s\)"
        ):
            _ = cgs.client


def test_ssh_wrong_key_is_refused_login(sshd, tmp_path):
    stranger = keygen(tmp_path / "stranger_ed25519")
    cgs = ClusterGridSearch(
        [HOST], worker_env=sys.executable, connect_options=sshd.connect_options(stranger), progress=False
    )
    with pytest.raises(
        ClusterConnectionError,
        match=rf"SSH host 127\.0\.0\.1 port {sshd.port} refused the login as '{sshd.user}' "
        r"\(.*\): add your public key .*client_keys",
    ):
        _ = cgs.client


def test_ssh_unknown_host_key_is_named(sshd, tmp_path):
    other = keygen(tmp_path / "other_host_ed25519").with_suffix(".pub").read_text().split()
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {other[0]} {other[1]}\n")
    cgs = ClusterGridSearch(
        [HOST],
        worker_env=sys.executable,
        connect_options=dict(sshd.connect_options(), known_hosts=str(known)),
        progress=False,
    )
    with pytest.raises(ClusterConnectionError, match=r"SSH host 127\.0\.0\.1 port \d+: its host key is not trusted"):
        _ = cgs.client


def test_ssh_missing_worker_env_is_named(sshd, tmp_path):
    python = str(tmp_path / "no-venv" / "bin" / "python")
    cgs = ClusterGridSearch([HOST], worker_env=python, connect_options=sshd.connect_options(), progress=False)
    with pytest.raises(
        FileNotFoundError,
        match=rf"worker_env '{python}' is not an executable Python on SSH host 127\.0\.0\.1 "
        rf"port {sshd.port} \(.*(not found|No such file).*\): set worker_env=",
    ):
        _ = cgs.client


def python_without_rustrates(tmp: Path) -> Path:
    """A venv of this Python whose site-packages links every package of this one except
    rustrates: dask, numpy and pandas import there, rustrates does not (offline, in ~0.1 s)."""
    venv = tmp / "venv-without-rustrates"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    ours = Path(sysconfig.get_paths()["purelib"])
    theirs = venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    for entry in ours.iterdir():
        if "rustrates" not in entry.name.lower():
            (theirs / entry.name).symlink_to(entry)
    return venv / "bin" / "python"


def test_ssh_worker_env_without_rustrates_is_named(sshd, tmp_path):
    python = python_without_rustrates(tmp_path)
    cgs = ClusterGridSearch([HOST], worker_env=str(python), connect_options=sshd.connect_options(), progress=False)
    with pytest.raises(
        ImportError,
        match=rf"{python} on SSH host 127\.0\.0\.1 port {sshd.port} cannot import rustrates "
        rf"\(ModuleNotFoundError: No module named 'rustrates'\): install `{python} -m pip "
        rf"install rustrates=={rustrates.__version__}` there",
    ):
        cgs.run(chunk_size=6, **seed_sweep())


def test_ssh_connect_options_one_per_host():
    cgs = ClusterGridSearch([HOST, HOST, HOST], connect_options=[{"port": 1}, {"port": 2}], progress=False)
    with pytest.raises(ValueError, match="connect_options lists 2 mappings for 3 hosts"):
        _ = cgs.client
