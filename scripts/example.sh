#!/usr/bin/env bash
# The main job on the example repository: validate it, show what runs where, render staging,
# and preview it offline (the program under mocks, judged by the policy pack over gRPC).
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
ensure_venv "pulumi"
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
echo
echo "== reconciler preview --environment staging (offline: the policy results)"
reconciler preview --environment staging "$ROOT" | sed -n '1p;/^Policies/,$p'
