"""How long does one reconcile pass take over 200 in-flight rollouts, against a real Prometheus?

    python bench/bench_reconcile.py                  # from the repository root: 20, 50 and 200 rollouts
    python -m bench.bench_reconcile --sizes 200 --runs 3 --json figures.json

For each size N it builds, in a temporary directory:

  repository  N models (bench/fleet.py, 2 versions each) in one environment, `staging`, every one
              with its stable and a candidate in flight at a stage of the default canary (0-4,
              round robin), its `stage_started_at` chosen so that the pass has every kind of
              decision to make: advance (promote from stage 4), wait, hold (a gate fails, or too
              few requests), rollback (error rate above the trigger). Releases use the default
              canary and notify one webhook, served by this benchmark on 127.0.0.1. The repository
              must load with zero errors (`load_repository`), and is committed to git.
  history     Istio's and the online evaluator's series for both versions of every model, from
              10 minutes before the candidate's stage started up to the pass's time (`--at`),
              one sample per 60 s (up to 49 h for stage 4), written by tests/prometheus_kit.py
              and backfilled into Debian's Prometheus (`start_prometheus`): only the series the
              stage's gates and the default triggers read are exported.

Then it measures (the dry runs after one untimed warm-up, which also checks that every decision is
the one the scenario was built for, in-process and from the CLI: otherwise the timings would be of
something else):

  pass        `run_pass(..., dry_run=True)` in this process: load, one query per metric, decide
              (loading and the Prometheus queries are timed apart);
  CLI         `python -m reconciler reconcile DIR --at T --prometheus URL --format json --dry-run`
              as a subprocess, wall time (start-up included); its peak RSS (VmHWM) from one more
              run started the way -m starts it (runpy), which writes it at exit;
  applying    the same pass without --dry-run, in-process and as the CLI, each run in a fresh clone
              of the repository (so every run has the same decisions to commit; the first one is
              checked: one commit per decision that changes something, a clean tree, every
              webhook delivered): wall time and the commits made; in-process, the commits' own
              time (`apply_all`: every environment file's texts, incident records, the commits
              with one `git fast-import`, HEAD moved, the working tree written), the YAML edits within
              it (`update_models_in_sequence`) and the notifications are timed apart.

Every figure is the median (and minimum) of --runs (applying: --apply-runs) runs. Goals, at the
largest size: the pass (in this process, and the CLI's dry run end to end) under 2 s, the same
number of Prometheus queries at every size, and the applying pass within 3x the dry pass.
Exit 1 if a scenario does not decide as built; with
--strict, also on a missed goal.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from math import ceil
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/bench_reconcile.py` puts bench/ first, not the root
    sys.path.insert(0, str(ROOT))

from bench.bench_validate import Series, fail, fmt_mb, fmt_s  # noqa: E402
from bench.fleet import POOLS, generate_fleet  # noqa: E402
from reconciler.core.release import Rollout  # noqa: E402
from reconciler.core.types import version_key  # noqa: E402
from tests.prometheus_kit import PrometheusServer, Traffic, openmetrics, start_prometheus  # noqa: E402

TIME_GOAL_S = 2.0
APPLY_GOAL = 3.0  # issue 14: an applying pass within 3x the dry pass
AT = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)  # the pass's `--at`; the history ends here
STEP = timedelta(seconds=60)
ENVIRONMENT = "staging"
STAGES = Rollout().stages  # the default canary: 0%, 1% 1h, 5% 4h, 25% 24h, 50% 48h, 100%
IN_FLIGHT_STAGES = range(len(STAGES) - 1)  # 0-4: stage 5 (100%, no checks) is reached by promoting
TOTAL_RPS = 40.0  # per model: 1% of it serves 1,000 requests in 42 min
STARVED_RPS = 0.5  # per model, for "too few requests" (stage 4: 0.25 rps x 50 h = 45,000 < 100,000)
GIT = ["git", "-c", "user.name=Sluice bench", "-c", "user.email=bench@sluice.invalid"]
EXPECTED = {"advance": "advance", "wait": "wait", "hold-gate": "hold", "hold-requests": "hold",
            "rollback": "rollback"}
ACTIONS = ("advance", "promote", "wait", "hold", "rollback")


# --- the repository ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    """One model's rollout, and what the pass should decide for it."""

    model: str
    stable: str
    candidate: str
    stage: int
    started: datetime
    outcome: str  # advance | wait | hold-gate | hold-requests | rollback
    pool: str
    gpus: int

    @property
    def expected(self) -> str:
        if self.outcome == "advance" and self.stage == len(STAGES) - 2:
            return "promote"  # the next stage is 100% with no checks: promoted at once
        return EXPECTED[self.outcome]


_SERVING = re.compile(r"^  serving:\n    image: .*\n    gpus: (\d+)\n    gpu_type: (\S+)$", re.M)


def _outcome(rng: random.Random, stage: int) -> str:
    if stage == 0:  # no duration, no requests, no gates: only the data's freshness can stop it
        return "advance"
    return rng.choices(("advance", "wait", "hold-gate", "hold-requests", "rollback"), (50, 25, 10, 5, 10))[0]


def _elapsed(rng: random.Random, stage: int, outcome: str) -> timedelta:
    minimum = STAGES[stage].min_duration
    if outcome == "wait":
        minutes = max(5, int(minimum.total_seconds() / 60 * rng.uniform(0.1, 0.9)))
    else:
        minutes = int(minimum.total_seconds() // 60) + rng.randint(10, 120)
    return timedelta(minutes=minutes)


def build_repository(root: Path, models: int, seed: int, webhook: str) -> list[Plan]:
    """Write the releases (bench/fleet.py, rollout replaced) and `environments/staging.yaml`; git init."""
    generate_fleet(root, models, versions=2, environments=0, seed=seed)
    rng = random.Random(seed)
    plans = []
    for i, folder in enumerate(sorted((root / "releases").iterdir())):
        files = sorted(folder.glob("*.yaml"), key=lambda p: version_key(p.stem))
        for path in files:
            text = path.read_text(encoding="utf-8")
            head = text[:text.index("\nrollout:\n")]
            path.write_text(f"{head}\nrollout:\n  strategy: canary  # the default stages and rollback triggers\n"
                            f"  notify:\n    - kind: webhook\n      url: {webhook}\n", encoding="utf-8")
        serving = _SERVING.search(files[-1].read_text(encoding="utf-8"))
        assert serving is not None, f"no bundle.serving in {files[-1]}"
        pool = next(p.name for p in POOLS.values() if p.gpu_type == serving.group(2))
        stage = IN_FLIGHT_STAGES[i % len(IN_FLIGHT_STAGES)]
        outcome = _outcome(rng, stage)
        plans.append(Plan(folder.name, files[0].stem, files[-1].stem, stage, AT - _elapsed(rng, stage, outcome),
                          outcome, pool, int(serving.group(1))))
    (root / "environments").mkdir(exist_ok=True)
    (root / "environments" / f"{ENVIRONMENT}.yaml").write_text(_environment_text(plans, seed), encoding="utf-8")
    _git(root, "init", "-q", "-b", "main")
    _git(root, "config", "user.name", "Sluice bench")  # the reconciler's commits, whatever the global config
    _git(root, "config", "user.email", "bench@sluice.invalid")
    _git(root, "add", ".")
    _git(root, "commit", "-q", "-m", f"Benchmark repository: {models} rollouts in flight")
    return plans


def _environment_text(plans: list[Plan], seed: int) -> str:
    nodes: Counter[str] = Counter()
    for plan in plans:  # one replica per version, stable + candidate
        per_node = POOLS[plan.pool].gpus_per_node // plan.gpus
        nodes[plan.pool] += 2 * ceil(1 / per_node)
    lines = [
        "# yaml-language-server: $schema=../schemas/environment.schema.json",
        f"# {len(plans)} canary rollouts in flight, written by bench/bench_reconcile.py (seed {seed}).",
        "cluster:", "  provider: aws-eks", "  region: us-east-1", "  name: llm-bench", '  kubernetes_version: "1.33"',
        "namespace: llm-serving", "", "gpu_pools:",
    ]
    for name in sorted(nodes):
        pool = POOLS[name]
        lines += [f"  - name: {name}", f"    instance_type: {pool.instance_type}   # {pool.note}",
                  f"    gpu_type: {pool.gpu_type}", f"    gpus_per_node: {pool.gpus_per_node}",
                  f"    min_nodes: {nodes[name] // 2}", f"    max_nodes: {nodes[name]}"]
    lines += ["", "istio:", "  gateway: istio-system/llm-gateway", "  hosts: [llm.bench.acme.example]", "",
              "metrics:",
              "  prometheus_url: http://prometheus.monitoring.svc:9090  # the benchmark passes --prometheus",
              "  window: 5m", "  max_staleness: 2m", "", "policy:", "  protected: false", "", "models:"]
    for plan in plans:
        lines += [f"  {plan.model}:", f'    stable: "{plan.stable}"', f'    candidate: "{plan.candidate}"',
                  f"    stage: {plan.stage}                              # {plan.outcome}",
                  f"    stage_started_at: {plan.started.strftime('%Y-%m-%dT%H:%M:%SZ')}",
                  f"    pool: {plan.pool}", "    replicas: 1"]
    return "\n".join(lines) + "\n"


def _git(root: Path, *args: str) -> str:
    env = dict(os.environ, GIT_AUTHOR_DATE="2026-11-22T09:00:00Z", GIT_COMMITTER_DATE="2026-11-22T09:00:00Z")
    done = subprocess.run([*GIT, *args], cwd=root, env=env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed in {root}:\n{done.stderr}")
    return done.stdout


def fresh_clone(base: Path, dest: Path) -> Path:
    if dest.exists():
        shutil.rmtree(dest)
    _git(base.parent, "clone", "-q", "--local", str(base), str(dest))
    _git(dest, "config", "user.name", "Sluice bench")
    _git(dest, "config", "user.email", "bench@sluice.invalid")
    return dest


# --- the history ---------------------------------------------------------------------------------------

def traffic(plans: list[Plan]) -> list[Traffic]:
    """Both versions of every model, exporting what the stage's gates and the default triggers read."""
    out = []
    end = AT + timedelta(seconds=1)  # the last sample is at AT exactly (starts are on whole minutes)
    for plan in plans:
        stage = STAGES[plan.stage]
        gate = plan.outcome == "hold-gate"
        rps = STARVED_RPS if plan.outcome == "hold-requests" else TOTAL_RPS
        metrics = {g.metric for g in stage.gates}
        stable_gauges: dict[str, float] = {"sluice_eval_safety_violation_rate": 0.001}
        cand_gauges: dict[str, float] = {"sluice_eval_safety_violation_rate": 0.004 if gate else 0.001}
        if "quality_score" in metrics:
            stable_gauges["sluice_eval_quality_score"] = 0.90
            cand_gauges["sluice_eval_quality_score"] = 0.85 if gate else 0.91
        if "user_satisfaction" in metrics:
            stable_gauges["sluice_eval_user_satisfaction"] = 0.90
            cand_gauges["sluice_eval_user_satisfaction"] = 0.80 if gate else 0.90
        latency = "latency_p99_ms" in metrics
        out.append(Traffic(plan.model, plan.stable, plan.started - timedelta(minutes=10), end,
                           rps=rps * (100 - stage.weight) / 100, error_ratio=0.002,
                           latency_p99_ms=800.0 if latency else None, gauges=stable_gauges))
        if stage.weight:
            out.append(Traffic(plan.model, plan.candidate, plan.started, end, rps=rps * stage.weight / 100,
                               error_ratio=0.08 if plan.outcome == "rollback" else 0.002,
                               latency_p99_ms=(1100.0 if gate else 820.0) if latency else None, gauges=cand_gauges))
    return out


_SAMPLE = re.compile(r"^([^#\n][^\n]*) \S+ \S+$", re.M)  # `name{labels} value timestamp`


@dataclass
class History:
    series: int
    samples: int
    bytes: int
    span: timedelta
    generate_s: float
    start_s: float  # backfill + start until ready


def serve_history(directory: Path, plans: list[Plan]) -> tuple[PrometheusServer, History]:
    started = time.perf_counter()
    text = openmetrics(traffic(plans), STEP)
    generated = time.perf_counter()
    series, samples = set(), 0
    for sample in _SAMPLE.finditer(text):  # one match at a time: no copy of a text of hundreds of MB
        series.add(sample.group(1))
        samples += 1
    history = History(len(series), samples, len(text.encode()),
                      AT - min(p.started for p in plans) + timedelta(minutes=10), generated - started, 0.0)
    del series
    server = start_prometheus(directory, text)
    history.start_s = time.perf_counter() - generated
    return server, history


# --- a webhook that answers 204 ------------------------------------------------------------------------

class _Sink(BaseHTTPRequestHandler):
    received = 0
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with _Sink.lock:
            _Sink.received += 1
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def webhook_sink() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="bench-webhook", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/sluice"
    finally:
        server.shutdown()
        server.server_close()


# --- measuring -----------------------------------------------------------------------------------------

@dataclass
class CliRun:
    seconds: float
    returncode: int
    stdout: str
    stderr: str


#: `python -m reconciler ARGS`, plus the process's own peak RSS (VmHWM) written to a file at exit.
#: The child's ru_maxrss from wait4 is no use here: Linux carries the parent's high-water mark over
#: fork and exec, and this process holds the histories it generated.
_CHILD_HWM = """
import atexit, runpy, sys

def _hwm(path=sys.argv[1]):
    with open("/proc/self/status") as status, open(path, "w") as out:
        out.write(next(line.split()[1] for line in status if line.startswith("VmHWM:")))

atexit.register(_hwm)
sys.argv = ["reconciler", *sys.argv[2:]]
runpy.run_module("reconciler", run_name="__main__", alter_sys=True)
"""


def _cli_env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))


def run_cli(args: list[str]) -> CliRun:
    """`python -m reconciler ARGS` from the repository root, wall time."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "reconciler", *args], cwd=ROOT, env=_cli_env(),
                          capture_output=True, text=True, timeout=600)
    return CliRun(time.perf_counter() - start, done.returncode, done.stdout, done.stderr)


def cli_peak_rss_kb(args: list[str]) -> int | None:
    """The peak RSS of one `python -m reconciler ARGS` (run as -m runs it, through runpy)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "hwm"
        done = subprocess.run([sys.executable, "-c", _CHILD_HWM, str(out), *args], cwd=ROOT, env=_cli_env(),
                              capture_output=True, text=True, timeout=600)
        return int(out.read_text()) if done.returncode == 0 and out.is_file() else None


@contextmanager
def timed_calls(spent: dict[str, list[float]], *names: str) -> Iterator[None]:
    """Time the calls run_pass makes to these functions of rollout_pass (each call's wall time)."""
    from reconciler.adapters import rollout_pass

    real = {name: getattr(rollout_pass, name) for name in names}

    def wrap(name: str) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return real[name](*args, **kwargs)
            finally:
                spent.setdefault(name, []).append(time.perf_counter() - start)
        return timed

    for name in names:
        setattr(rollout_pass, name, wrap(name))
    try:
        yield
    finally:
        for name, function in real.items():
            setattr(rollout_pass, name, function)


def _actions(decisions: list[dict[str, Any]]) -> dict[str, int]:
    counts = Counter(d["action"] for d in decisions)
    return {action: counts.get(action, 0) for action in (*ACTIONS, *sorted(set(counts) - set(ACTIONS)))}


def check_decisions(plans: list[Plan], decisions: list[dict[str, Any]], what: str) -> bool:
    """Every rollout decided as its scenario was built, and nothing else decided: else say so."""
    wanted = {(ENVIRONMENT, p.model): p for p in plans}
    got = {(d["environment"], d["model"]): d for d in decisions}
    wrong = [f"{key[1]} stage {plan.stage} ({plan.outcome}): expected {plan.expected}, got "
             f"{got[key]['action'] if key in got else 'no decision'}: {'; '.join(got.get(key, {}).get('reasons', []))}"
             for key, plan in wanted.items() if got.get(key, {}).get("action") != plan.expected]
    extra = [f"unplanned decision {d['model']}: {d['action']}" for key, d in got.items() if key not in wanted]
    if len(decisions) != len(got):
        extra.append(f"{len(decisions)} decisions for {len(got)} rollouts")
    if wrong or extra:
        fail(f"{what}: {len(wrong) + len(extra)} decision(s) differ from the scenarios built", "\n".join(wrong + extra))
        return False
    return True


@dataclass
class SizeFigures:
    rollouts: int
    stages: dict[int, int]
    history: History
    queries: int = 0
    actions: dict[str, int] = field(default_factory=dict)
    pass_s: Series = field(default_factory=lambda: Series("run_pass --dry-run (in-process)"))
    load_s: Series = field(default_factory=lambda: Series("of which loading the repository"))
    observe_s: Series = field(default_factory=lambda: Series("of which Prometheus queries"))
    cli_s: Series = field(default_factory=lambda: Series("reconcile --dry-run (CLI)"))
    apply_s: Series = field(default_factory=lambda: Series("run_pass applying (in-process)"))
    commits_s: Series = field(default_factory=lambda: Series("of which commits"))
    edit_s: Series = field(default_factory=lambda: Series("of which editing the environment file"))
    notify_s: Series = field(default_factory=lambda: Series("of which notifications"))
    cli_apply_s: Series = field(default_factory=lambda: Series("reconcile applying (CLI)"))
    commits: int = 0
    incidents: int = 0
    notifications: int = 0
    cli_rss_kb: int | None = None
    cli_apply_rss_kb: int | None = None
    traced_peak: int = 0
    prometheus_hwm_kb: int | None = None


def _vm_hwm_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def bench_size(args: argparse.Namespace, size: int, workdir: Path, webhook: str) -> SizeFigures | None:
    from reconciler.adapters.repo_loader import load_repository
    from reconciler.adapters.rollout_pass import run_pass
    from reconciler.cli.reconcile import report_json

    base = workdir / f"repo-{size}"
    for stale in (base, workdir / f"prometheus-{size}"):  # a --keep directory from an earlier run
        shutil.rmtree(stale, ignore_errors=True)
    plans = build_repository(base, size, args.seed, webhook)
    loaded = load_repository(base)
    if loaded.errors or loaded.warnings:
        fail(f"the generated repository of {size} rollouts does not validate cleanly",
             "\n".join(str(f) for f in [*loaded.errors, *loaded.warnings][:40]))
        return None
    del loaded
    server, history = serve_history(workdir / f"prometheus-{size}", plans)
    figures = SizeFigures(size, dict(sorted(Counter(p.stage for p in plans).items())), history)
    try:
        url = server.url
        at = AT.strftime("%Y-%m-%dT%H:%M:%SZ")
        dry_cli = ["reconcile", str(base), "--at", at, "--prometheus", url, "--format", "json", "--dry-run"]

        # warm-up and sanity: in-process and CLI decide the same, and as the scenarios were built
        report = json.loads(report_json(run_pass(base, prometheus_url=url, at=AT, dry_run=True)))
        if not check_decisions(plans, report["decisions"], f"{size} rollouts, in-process dry run"):
            return None
        warm = run_cli(dry_cli)
        if warm.returncode != 0 or json.loads(warm.stdout) != report:
            fail(f"the CLI's dry run (exit {warm.returncode}) differs from the in-process pass",
                 warm.stderr + warm.stdout[:4000])
            return None
        figures.queries = report["queries"]
        figures.actions = _actions(report["decisions"])

        for _ in range(args.runs):
            spent: dict[str, list[float]] = {}
            gc.collect()
            with timed_calls(spent, "load_valid", "observe_environment"):
                start = time.perf_counter()
                result = run_pass(base, prometheus_url=url, at=AT, dry_run=True)
                figures.pass_s.times.append(time.perf_counter() - start)
            figures.load_s.times.append(sum(spent["load_valid"]))
            figures.observe_s.times.append(sum(spent["observe_environment"]))
            if result.queries != figures.queries:
                fail(f"the query count changed between runs ({figures.queries} then {result.queries})", "")
                return None
            cli = run_cli(dry_cli)
            if cli.returncode != 0:
                fail(f"the CLI's dry run exited {cli.returncode}", cli.stderr)
                return None
            figures.cli_s.times.append(cli.seconds)
        figures.cli_rss_kb = cli_peak_rss_kb(dry_cli)
        tracemalloc.start()
        run_pass(base, prometheus_url=url, at=AT, dry_run=True)
        figures.traced_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()

        # applying: a fresh clone per run, so each run commits the same decisions (the dry runs above
        # were the warm-up; the first applying run is also checked)
        for k in range(args.apply_runs):
            clone = fresh_clone(base, workdir / f"apply-{size}")
            spent = {}
            received = _Sink.received
            gc.collect()
            with timed_calls(spent, "apply_all", "update_models_in_sequence", "send_notifications"):
                start = time.perf_counter()
                result = run_pass(clone, prometheus_url=url, at=AT)
                seconds = time.perf_counter() - start
            commits = int(_git(clone, "rev-list", "--count", "HEAD").strip()) - 1
            if k == 0:
                applied = json.loads(report_json(result))["decisions"]
                if not check_decisions(plans, applied, f"{size} rollouts, applying pass"):
                    return None
                expected = sum(1 for d in applied if d["action"] not in ("wait", "hold"))
                if commits != expected or _git(clone, "status", "--porcelain"):
                    fail(f"the applying pass made {commits} commit(s) for {expected} decision(s) that change "
                         "something, or left the tree dirty", _git(clone, "status", "--porcelain"))
                    return None
                figures.commits = commits
                figures.incidents = sum(1 for a in result.applied if a.incident)
                figures.notifications = _Sink.received - received
                bad = [f"{d.target}: {d.detail}" for a in result.applied for d in a.deliveries if not d.ok]
                if bad:
                    fail("notifications to the benchmark's webhook failed", "\n".join(bad))
                    return None
            figures.apply_s.times.append(seconds)
            figures.commits_s.times.append(sum(spent.get("apply_all", [])))
            figures.edit_s.times.append(sum(spent.get("update_models_in_sequence", [])))
            figures.notify_s.times.append(sum(spent.get("send_notifications", [])))
        for _ in range(args.apply_runs):
            clone = fresh_clone(base, workdir / f"apply-{size}")
            cli = run_cli(["reconcile", str(clone), "--at", at, "--prometheus", url, "--format", "json"])
            commits = int(_git(clone, "rev-list", "--count", "HEAD").strip()) - 1
            if cli.returncode != 0 or commits != figures.commits:
                fail(f"the CLI's applying pass exited {cli.returncode} with {commits} commit(s) "
                     f"(in-process: {figures.commits})", cli.stderr)
                return None
            figures.cli_apply_s.times.append(cli.seconds)
        clone = fresh_clone(base, workdir / f"apply-{size}")
        figures.cli_apply_rss_kb = cli_peak_rss_kb(["reconcile", str(clone), "--at", at, "--prometheus", url])
        figures.prometheus_hwm_kb = _vm_hwm_kb(server.process.pid)
    finally:
        server.stop()
        shutil.rmtree(workdir / f"apply-{size}", ignore_errors=True)
    return figures


# --- report --------------------------------------------------------------------------------------------

def _ms_per(seconds: float, count: int) -> str:
    return f"{seconds / count * 1000:.1f} ms" if count else "-"


def report(all_figures: dict[int, SizeFigures], args: argparse.Namespace) -> list[tuple[str, str, str, bool | None]]:
    sizes = sorted(all_figures)
    print("\nHistory and Prometheus")
    print(f"{'rollouts':>9}{'stages 0-4':>22}{'series':>9}{'samples':>12}{'OpenMetrics':>13}{'span':>9}"
          f"{'generate':>10}{'backfill+start':>16}{'Prometheus RSS':>16}")
    for n in sizes:
        f, h = all_figures[n], all_figures[n].history
        stages = "/".join(str(f.stages.get(s, 0)) for s in IN_FLIGHT_STAGES)
        print(f"{n:>9}{stages:>22}{h.series:>9,}{h.samples:>12,}{h.bytes / 1e6:>10.0f} MB"
              f"{h.span.total_seconds() / 3600:>7.1f} h{h.generate_s:>9.2f}s{h.start_s:>15.2f}s"
              f"{fmt_mb(f.prometheus_hwm_kb):>16}")

    print(f"\nDry run: load, query, decide (median / min of {args.runs}; load and queries: medians, in-process)")
    print(f"{'rollouts':>9}{'queries':>9}{'advance/promote/wait/hold/rollback':>37}{'in-process':>22}{'load':>9}"
          f"{'queries':>9}{'CLI (subprocess)':>22}{'CLI RSS':>9}{'traced':>9}")
    for n in sizes:
        f = all_figures[n]
        actions = "/".join(str(f.actions.get(a, 0)) for a in ACTIONS)
        print(f"{n:>9}{f.queries:>9}{actions:>37}{fmt_s(f.pass_s.median):>11}{fmt_s(f.pass_s.min):>11}"
              f"{fmt_s(f.load_s.median):>9}{fmt_s(f.observe_s.median):>9}{fmt_s(f.cli_s.median):>11}"
              f"{fmt_s(f.cli_s.min):>11}{fmt_mb(f.cli_rss_kb):>9}{fmt_mb(f.traced_peak / 1024):>9}")

    print(f"\nApplying: a fresh clone per run (median of {args.apply_runs}); in-process, the commits (apply_all: edit "
          "the environment file, incident record, git commit) and notifications are timed apart")
    print(f"{'rollouts':>9}{'commits':>8}{'incid.':>7}{'hooks':>6}{'in-process':>11}{'commits':>10}{'per commit':>11}"
          f"{'YAML edit':>10}{'git+rest':>9}{'notify':>9}{'other':>9}{'CLI':>10}{'CLI - dry':>10}{'per commit':>11}"
          f"{'CLI RSS':>9}")
    for n in sizes:
        f = all_figures[n]
        other = f.apply_s.median - f.commits_s.median - f.notify_s.median
        marginal = f.cli_apply_s.median - f.cli_s.median
        edit, git_rest = f.edit_s.median, f.commits_s.median - f.edit_s.median
        print(f"{n:>9}{f.commits:>8}{f.incidents:>7}{f.notifications:>6}{fmt_s(f.apply_s.median):>11}"
              f"{fmt_s(f.commits_s.median):>10}{_ms_per(f.commits_s.median, f.commits):>11}"
              f"{_ms_per(edit, f.commits):>10}{_ms_per(git_rest, f.commits):>9}"
              f"{fmt_s(f.notify_s.median):>9}{fmt_s(other):>9}{fmt_s(f.cli_apply_s.median):>10}"
              f"{fmt_s(marginal):>10}{_ms_per(marginal, f.commits):>11}{fmt_mb(f.cli_apply_rss_kb):>9}")

    largest = all_figures[sizes[-1]]
    queries = {n: all_figures[n].queries for n in sizes}
    goals = [
        (f"pass over {sizes[-1]} rollouts, in-process < {TIME_GOAL_S:g} s", f"< {TIME_GOAL_S:.3f} s",
         fmt_s(largest.pass_s.median), largest.pass_s.median < TIME_GOAL_S),
        (f"reconcile --dry-run, {sizes[-1]} rollouts, CLI < {TIME_GOAL_S:g} s", f"< {TIME_GOAL_S:.3f} s",
         fmt_s(largest.cli_s.median), largest.cli_s.median < TIME_GOAL_S),
        (f"applying pass, {sizes[-1]} rollouts, in-process <= {APPLY_GOAL:g}x dry", f"<= {APPLY_GOAL:g}x",
         f"{largest.apply_s.median / largest.pass_s.median:.2f}x",
         largest.apply_s.median <= APPLY_GOAL * largest.pass_s.median),
        (f"applying pass, {sizes[-1]} rollouts, CLI <= {APPLY_GOAL:g}x dry", f"<= {APPLY_GOAL:g}x",
         f"{largest.cli_apply_s.median / largest.cli_s.median:.2f}x",
         largest.cli_apply_s.median <= APPLY_GOAL * largest.cli_s.median),
        ("queries independent of the rollouts", "equal", ", ".join(f"{n}: {q}" for n, q in queries.items()),
         (len(set(queries.values())) == 1) if len(sizes) > 1 else None),  # None: one size shows nothing
    ]
    print(f"\n{'goal (medians)':<50}{'target':>10}   {'measured':<24}result")
    for name, target, measured, ok in goals:
        result = "-  (needs two sizes)" if ok is None else "PASS" if ok else "MISS"
        print(f"{name:<50}{target:>10}   {measured:<24}{result}")
    return goals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_reconcile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="20,50,200", help="rollouts in flight, comma-separated (default: 20,50,200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=int, default=5, help="timed dry runs per measurement (default: 5)")
    parser.add_argument("--apply-runs", type=int, default=2, help="timed applying passes, in-process and CLI, "
                        "each in a fresh clone (default: 2)")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="build in DIR and keep the repositories (repo-N) and TSDBs (prometheus-N)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)
    try:
        sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    except ValueError:
        parser.error(f"--sizes: {args.sizes!r} is not a list of numbers")
    if not sizes or min(sizes) < len(IN_FLIGHT_STAGES) or args.runs < 1 or args.apply_runs < 1:
        parser.error(f"need sizes of at least {len(IN_FLIGHT_STAGES)} (one rollout per stage) and at least one run")

    print(f"Sluice reconcile benchmark: {', '.join(map(str, sizes))} canary rollouts in flight in one environment, "
          f"seed {args.seed}, --at {AT:%Y-%m-%dT%H:%M:%SZ}")
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.platform()}; "
          f"{_prometheus_version()}; {args.runs} dry runs and {args.apply_runs} applying runs\n")
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    tmp = None if args.keep else tempfile.TemporaryDirectory(prefix="sluice-bench-reconcile-")
    workdir = args.keep or Path(tmp.name)  # type: ignore[union-attr]
    all_figures: dict[int, SizeFigures] = {}
    started = time.perf_counter()
    try:
        with webhook_sink() as webhook:
            for size in sizes:
                t0 = time.perf_counter()
                figures = bench_size(args, size, workdir, webhook)
                if figures is None:
                    return 1
                all_figures[size] = figures
                print(f"  {size} rollouts: {figures.history.samples:,} samples backfilled, measured in "
                      f"{time.perf_counter() - t0:.0f} s")
    finally:
        if tmp is not None:
            tmp.cleanup()
    goals = report(all_figures, args)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"\nbenchmark: {time.perf_counter() - started:.0f} s; this process's peak RSS {fmt_mb(rss)} "
          "(it generates the histories)")
    if args.json:
        args.json.write_text(json.dumps({
            "seed": args.seed, "at": AT.isoformat(), "python": platform.python_version(),
            "sizes": {n: {
                "rollouts": f.rollouts, "stages": f.stages, "queries": f.queries, "actions": f.actions,
                "history": {"series": f.history.series, "samples": f.history.samples, "bytes": f.history.bytes,
                            "span_s": f.history.span.total_seconds(), "generate_s": f.history.generate_s,
                            "backfill_and_start_s": f.history.start_s},
                "prometheus_hwm_kb": f.prometheus_hwm_kb, "traced_peak_bytes": f.traced_peak,
                "cli_peak_rss_kb": f.cli_rss_kb, "cli_apply_peak_rss_kb": f.cli_apply_rss_kb,
                "commits": f.commits, "incidents": f.incidents, "notifications": f.notifications,
                "series": {s.label: {"median_s": statistics.median(s.times), "min_s": min(s.times), "times_s": s.times}
                           for s in (f.pass_s, f.load_s, f.observe_s, f.cli_s, f.apply_s, f.commits_s, f.edit_s,
                                     f.notify_s, f.cli_apply_s)},
            } for n, f in all_figures.items()},
            "goals": {name: {"target": target, "measured": measured, "pass": ok}
                      for name, target, measured, ok in goals},
        }, indent=2) + "\n", encoding="utf-8")
    return 1 if args.strict and any(ok is False for *_, ok in goals) else 0


def _prometheus_version() -> str:
    try:
        out = subprocess.run(["prometheus", "--version"], capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "prometheus: not found (apt-get install -y --no-install-recommends prometheus)"


if __name__ == "__main__":
    raise SystemExit(main())
