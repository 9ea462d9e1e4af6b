#!/usr/bin/env python3
"""Load every template of PyRates 1.2.3's own YAML files with rustrates.

Fetches the `pyrates==1.2.3` wheel with `pip download` (no install: only its
`model_templates/` YAML files are needed), unpacks `model_templates/` into a cache folder,
and runs the Rust test `templates::pyrates_templates_load_or_are_listed` on it. That test
prints one line per template (ok, or PyRates itself cannot load it,
with the reason) and the counts, and fails if a template that should load does not.

    python scripts/check_pyrates_templates.py              # fetch (cached) and check
    python scripts/check_pyrates_templates.py --templates DIR/model_templates
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYRATES = "pyrates==1.2.3"
TEST = "templates::pyrates_templates_load_or_are_listed"


def pinned_requirement(lock: Path, name: str) -> str:
    """The `name==version \\ --hash=...` entry of a hashed lock file, as a requirement file."""
    lines, taking = [], False
    for line in lock.read_text().splitlines():
        if line and not line.startswith((" ", "#")):
            taking = line.lower().startswith(f"{name}==")
        if taking and not line.lstrip().startswith("#"):
            lines.append(line)
    if not lines or PYRATES not in lines[0]:
        raise RuntimeError(f"{lock} does not pin {PYRATES}")
    return "\n".join(lines).rstrip(" \\") + "\n"


def fetch_templates(cache: Path) -> Path:
    """Return the `model_templates` folder of the PyRates wheel, downloading it once."""
    target = cache / "model_templates"
    if (target / "base_templates.yaml").is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        # The exact file scripts/lock/pyrates.lock pins (its hashes), nothing else.
        requirement = Path(tmp) / "pyrates.txt"
        requirement.write_text(pinned_requirement(ROOT / "scripts" / "lock" / "pyrates.lock", "pyrates"))
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--require-hashes",
                "--quiet",
                "-r",
                str(requirement),
                "-d",
                tmp,
            ],
            check=True,
        )
        wheels = list(Path(tmp).glob("pyrates-*.whl"))
        if len(wheels) != 1:
            raise RuntimeError(f"expected one pyrates wheel in {tmp}, found {wheels}")
        with zipfile.ZipFile(wheels[0]) as whl:
            members = [m for m in whl.namelist() if m.startswith("model_templates/")]
            whl.extractall(cache, members)
    return target


def run_check(templates: Path) -> subprocess.CompletedProcess[str]:
    """Run the Rust test on a `model_templates` folder; output is captured."""
    env = dict(os.environ, RUSTRATES_PYRATES_TEMPLATES=str(templates))
    cmd = ["cargo", "test", "-p", "rustrates", "--test", "it", "--", "--ignored", "--exact", "--nocapture", TEST]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--templates", type=Path, help="an existing model_templates folder")
    ap.add_argument(
        "--cache",
        type=Path,
        default=ROOT / "target" / "pyrates-1.2.3",
        help="where the wheel's model_templates are unpacked",
    )
    args = ap.parse_args()
    templates = args.templates or fetch_templates(args.cache)
    result = run_check(templates)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
