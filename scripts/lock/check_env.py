"""Checks that a Python environment holds exactly the packages of a lock file.

    python check_env.py LOCK                    # exit 1 and list the differences
    python check_env.py --uninstall-extra LOCK  # first remove what the lock does not name

Packages a venv brings itself (pip, setuptools) and rustrates (built from this tree by
maturin) are not part of any lock. Used by scripts/setup.sh and by
tests/python/test_environment.py, so CI fails when the installed environment drifts.
"""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

NOT_LOCKED = {"pip", "setuptools", "wheel", "rustrates"}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_versions(lock: Path) -> dict[str, str]:
    """`name==version` lines of a pip-compile/uv lock (hash continuation lines skipped)."""
    pins = {}
    for line in lock.read_text().splitlines():
        match = PIN.match(line)
        if match:
            pins[normalise(match.group(1))] = match.group(2)
    if not pins:
        raise SystemExit(f"{lock}: no `name==version` lines; is it a lock file?")
    return pins


def installed_versions() -> dict[str, str]:
    return {
        normalise(dist.metadata["Name"]): dist.version for dist in metadata.distributions() if dist.metadata["Name"]
    }


def differences(lock: Path) -> list[str]:
    wanted = locked_versions(lock)
    have = installed_versions()
    problems = []
    for name, version in sorted(wanted.items()):
        if name not in have:
            problems.append(f"{name}: locked {version}, not installed")
        elif have[name] != version:
            problems.append(f"{name}: locked {version}, installed {have[name]}")
    for name in sorted(set(have) - set(wanted) - NOT_LOCKED):
        problems.append(f"{name}: installed {have[name]}, not in the lock")
    return problems


def main(argv: list[str]) -> int:
    uninstall_extra = "--uninstall-extra" in argv
    args = [a for a in argv if a != "--uninstall-extra"]
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    lock = Path(args[0])
    if uninstall_extra:
        extra = [p.split(":")[0] for p in differences(lock) if p.endswith("not in the lock")]
        if extra:
            subprocess.run([sys.executable, "-m", "pip", "uninstall", "--quiet", "-y", *extra], check=True)
    problems = differences(lock)
    for problem in problems:
        print(f"{lock}: {problem}", file=sys.stderr)
    if problems:
        print(f"{lock}: run scripts/setup.sh --python to install the lock", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
