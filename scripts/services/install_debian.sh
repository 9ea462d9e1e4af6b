#!/usr/bin/env bash
# Installs the named Debian packages that are missing (one `apt-get update`, only when something
# is missing). Used by setup.sh for the servers the tests start themselves (sshd, Slurm).
#   scripts/services/install_debian.sh PKG...
# Without root or apt-get it only says what is missing: the tests that need it then skip, except
# under CI=true, where this fails the run (nothing may skip there).
set -euo pipefail

missing=()
for pkg in "$@"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "install_debian.sh: missing Debian packages: ${missing[*]} (as root: apt-get install ${missing[*]})" >&2
  if [ "${CI:-}" = true ]; then
    echo "install_debian.sh: CI=true, where the tests that need them may not skip" >&2
    exit 1
  fi
  exit 0
fi

# Another apt-get (a second setup running at the same time) holds the lock: wait for it.
apt=(apt-get -qq -o DPkg::Lock::Timeout=600)
export DEBIAN_FRONTEND=noninteractive
"${apt[@]}" update
"${apt[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null
echo "install_debian.sh: installed ${missing[*]}" >&2
