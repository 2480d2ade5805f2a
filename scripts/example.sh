#!/usr/bin/env bash
# The main job on the example repository: validate it, then show what runs where.
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
ensure_venv ""
echo "== reconciler validate"
reconciler validate "$ROOT"
echo
echo "== reconciler status"
reconciler status "$ROOT"
