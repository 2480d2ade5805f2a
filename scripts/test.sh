#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs Debian's prometheus and the Python packages, then runs pytest.
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
if ! command -v prometheus >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
ensure_venv "test"
exec python -m pytest "$@"
