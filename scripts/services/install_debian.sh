#!/usr/bin/env bash
# Installs the Debian packages named as arguments that are not installed yet (apt-get, as
# root). Not root: says what is missing and how to install it, and goes on (the tests that
# need the packages skip, or fail under CI=true). Idempotent.
#   scripts/services/install_debian.sh slurm-wlm munge
set -euo pipefail
missing=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "install_debian.sh: not root, so not installing ${missing[*]} (as root: apt-get install ${missing[*]})" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
