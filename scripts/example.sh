#!/usr/bin/env bash
# The main job on the example repository: validate it, show what runs where, render staging.
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
ensure_venv ""
echo "== reconciler validate"
reconciler validate "$ROOT"
echo
echo "== reconciler status"
reconciler status "$ROOT"
echo
echo "== reconciler render --environment staging (the weighted in-mesh route of chat-assistant)"
out="$(mktemp -d)/staging"
reconciler render --environment staging --out "$out" "$ROOT"
sed -n '/name: mesh-weighted/,/timeout:/p' "$out/6-virtualservice-chat-assistant.yaml"
rm -rf "$(dirname "$out")"
