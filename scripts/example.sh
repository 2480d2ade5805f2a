#!/usr/bin/env bash
# The main job on the example repository: validate it, show what runs where, render staging,
# preview it offline (the program under mocks, judged by the policy pack over gRPC), then play a
# canary end to end against a local Prometheus (or recorded metric values) and write its report, and
# show the online evaluator's series deciding a shadow stage (scripted models on loopback, no GPU).
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
ensure_venv "pulumi,evaluator"  # the shadow act runs the online evaluator
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
echo
echo "== a rollout end to end, in a temporary git repository made from this one: reconciler start, reconcile"
echo "   passes that advance it, a breach, the automatic rollback with its incident record, reconciler report"
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || sudo -n true 2>/dev/null; }; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
    echo "(installing Debian's prometheus for a real Prometheus: apt-get install -y --no-install-recommends prometheus)"
    { $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends prometheus; } >/dev/null 2>&1 \
      || echo "(the install failed: the demo plays from recorded metric values instead)"
  fi
fi
python -m reconciler.demo --out "$(mktemp -d)/demo"
echo
echo "== the online evaluator deciding a shadow stage, in another temporary repository: scripted stable and"
echo "   candidate servers, classifier and judge on loopback (no GPU, no network), the real evaluator fed mirrored"
echo "   requests, Prometheus scraping it live, and a reconcile pass reading its series"
python -m reconciler.demo.shadow_act --out "$(mktemp -d)/shadow"
