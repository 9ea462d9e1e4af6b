"""SSH hosts: every host logged in to and its Python checked (dask, rustrates, versions)
before ``SSHCluster`` starts, so a host that cannot be used is named with the reason."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Mapping
from typing import Any

from .. import _rustrates
from ._errors import ClusterConnectionError

# Run on each SSH host by the Python given as worker_env, before Dask is started there.
_SSH_PROBE = """
import json, sys
out = {"python": "%d.%d" % sys.version_info[:2]}
for name in ("distributed", "rustrates"):
    try:
        out[name] = __import__(name).__version__
    except Exception as exc:
        out[name] = None
        out[name + "_error"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(out))
"""


def _per_host_options(options: Any, n_nodes: int, n_hosts: int) -> Any:
    """``connect_options`` as SSHCluster takes them: one dict, or one per host (a single
    node was doubled into scheduler and worker, so its one entry is too)."""
    if options is None:
        return {}
    if isinstance(options, Mapping):
        return dict(options)
    if isinstance(options, (list, tuple)) and all(isinstance(o, Mapping) for o in options):
        if len(options) != n_nodes:
            raise ValueError(
                f"connect_options lists {len(options)} mappings for {n_nodes} hosts: give one per "
                "entry of nodes, or a single mapping for all of them"
            )
        listed = [dict(o) for o in options]
        return listed * 2 if n_hosts > n_nodes else listed
    raise TypeError(
        "connect_options must be a mapping of asyncssh.connect keywords (port=, username=, "
        f"client_keys=, known_hosts=, ...) or a list of them, one per host; got {options!r}"
    )


def _check_ssh_hosts(hosts: list[str], options: Any, python: str, timeout: float) -> None:
    """Logs in to every distinct host and runs ``python`` there: raises one clear error per
    failing host (unreachable, login refused, unknown host key, no such Python, Python
    without dask or rustrates, another rustrates version)."""
    import asyncio  # noqa: PLC0415
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    try:
        import asyncssh  # noqa: F401, PLC0415 - optional dependency
    except ImportError:
        raise ImportError(
            "ClusterGridSearch on SSH hosts needs asyncssh: pip install 'rustrates[cluster]' (or pip install asyncssh)"
        ) from None
    per_host = options if isinstance(options, list) else [options] * len(hosts)
    checks: dict[str, tuple[str, dict[str, Any], bool]] = {}
    for i, (host, opts) in enumerate(zip(hosts, per_host)):
        key = f"{host} {sorted(opts.items())!r}"
        # The first host runs the scheduler (dask only); the others run the chunks.
        needs_rustrates = i > 0 or checks.get(key, ("", {}, False))[2]
        checks[key] = (host, opts, needs_rustrates)

    async def check_all() -> list[BaseException | None]:
        return await asyncio.gather(
            *(_check_ssh_host(host, opts, python, rr, timeout) for host, opts, rr in checks.values()),
            return_exceptions=True,
        )

    # Its own thread and event loop: the caller may be inside one (Jupyter).
    with ThreadPoolExecutor(1) as pool:
        results = pool.submit(asyncio.run, check_all()).result()
    errors = [r for r in results if r is not None]
    if errors:
        first = errors[0]
        if len(errors) == 1:
            raise first
        raise type(first)("; ".join(str(e) for e in errors))


async def _check_ssh_host(
    host: str, options: Mapping[str, Any], python: str, needs_rustrates: bool, timeout: float
) -> None:
    import getpass  # noqa: PLC0415

    import asyncssh  # noqa: PLC0415

    opts = dict(options)
    opts.setdefault("connect_timeout", timeout)
    where = f"SSH host {host}" + (f" port {opts['port']}" if "port" in opts else "")
    user = opts.get("username") or getpass.getuser()
    try:
        conn = await asyncssh.connect(host, **opts)
    except asyncssh.PermissionDenied as exc:
        return ClusterConnectionError(
            f"{where} refused the login as {user!r} ({exc.reason}): add your public key to that user's "
            "~/.ssh/authorized_keys there, load the key into your ssh-agent, or name it with "
            "connect_options={'client_keys': ['~/.ssh/id_ed25519'], 'username': ...}"
        )
    except asyncssh.HostKeyNotVerifiable as exc:
        return ClusterConnectionError(
            f"{where}: its host key is not trusted ({exc.reason}): log in once with `ssh {host}` to "
            "add it to ~/.ssh/known_hosts, or pass connect_options={'known_hosts': 'path/to/known_hosts'}"
        )
    except (TimeoutError, OSError, asyncssh.Error) as exc:
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else f"no answer within {opts['connect_timeout']:g} s"
        return ClusterConnectionError(
            f"cannot reach {where} ({detail}): check the host name, that sshd runs there and that the "
            "port is open from here (connect_options={'port': ...} for another port, connect_timeout= "
            "for a longer wait)"
        )
    # Importing rustrates (numpy, pandas) on a cold disk takes a while: a generous limit.
    limit = timeout + 60
    async with conn:
        try:
            result = await conn.run(probe_command(python), check=False, timeout=limit)
        except (TimeoutError, OSError, asyncssh.Error) as exc:
            return RuntimeError(
                f"worker_env {python!r} on {where} did not finish a short Python check within {limit:g} s "
                f"({type(exc).__name__}: {exc}); is that host overloaded, or its filesystem hanging?"
            )
    return _probe_error(
        python, where, result.exit_status, str(result.stdout or ""), str(result.stderr or ""), needs_rustrates
    )


def probe_command(python: str) -> str:
    """The shell command that runs :data:`_SSH_PROBE` with ``python`` on a host."""
    return f"{shlex.quote(python)} -c {shlex.quote(_SSH_PROBE)}"


def _probe_error(
    python: str, where: str, exit_status: int | None, stdout: str, stderr: str, needs_rustrates: bool
) -> Exception | None:
    """What is wrong with ``python`` on ``where``, from the exit status and output of
    :func:`probe_command` there: None when it can run this client's chunks (or, without
    ``needs_rustrates``, its scheduler)."""
    stderr = stderr.strip()
    if exit_status in (126, 127):
        return FileNotFoundError(
            f"worker_env {python!r} is not an executable Python on {where} ({stderr}): set worker_env= "
            "to the path of the Python that has rustrates there, e.g. '/home/me/venv/bin/python'"
        )
    try:
        found = json.loads(stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return RuntimeError(
            f"worker_env {python!r} on {where} failed to run a Python check (exit status "
            f"{exit_status}: {stderr or stdout!r}); is it a Python 3 interpreter?"
        )
    client_python = "{}.{}".format(*sys.version_info[:2])
    if found.get("python") != client_python:
        return RuntimeError(
            f"{python} on {where} is Python {found.get('python')}, this client {client_python}: Dask "
            f"sends pickled functions, which need the same version; set worker_env= to a Python "
            f"{client_python} there"
        )
    wheel = (
        f"`{python} -m pip install rustrates=={_rustrates.__version__}` there (or the "
        "manylinux2014 wheel that scripts/check_wheel.sh builds)"
    )
    if found["distributed"] is None:
        return ImportError(
            f"{python} on {where} cannot import dask.distributed ({found['distributed_error']}): "
            f"install it there with `{python} -m pip install 'dask[distributed]'`, or set worker_env= "
            "to a Python that has it"
        )
    if not needs_rustrates:
        return None
    if found["rustrates"] is None:
        return ImportError(
            f"{python} on {where} cannot import rustrates ({found['rustrates_error']}): install "
            f"{wheel}, or set worker_env= to a Python that has it"
        )
    if found["rustrates"] != _rustrates.__version__:
        return ImportError(
            f"{python} on {where} has rustrates {found['rustrates']}, this client "
            f"{_rustrates.__version__}: install {wheel}"
        )
    return None
