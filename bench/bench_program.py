"""How fast does the Pulumi program register a fleet under the SDK's mocks, against bare registrations?

    python bench/bench_program.py                       # from the repository root
    python -m bench.bench_program --models 100 --environments 3 --runs 3

Generates a synthetic fleet (bench/fleet.py; default 100 models x 10 versions, 3 environments) in a
temporary directory, checks that `reconciler validate` finds 0 errors in it, copies `infra/` into it
and runs the program in this process under the SDK's official mocks
(`reconciler.adapters.offline_engine.run_program`), one stack per environment. Side by side, in
the same process and under the same mocks (the same `run_program`, with a two-line `__main__.py`
that calls back into this file), it registers the resources the program recorded with no Sluice
code at all:

  bare   every recorded *custom* resource as `pulumi.CustomResource(type, name, props=inputs)`
         (providers as `pulumi.ProviderResource`): flat, default provider, no components;
  tree   every recorded resource, components included (bare `pulumi.ComponentResource`s), each
         with its recorded parent and provider: the same URNs and the same count as the program;
  typed  `tree`, with the Kubernetes objects built by pulumi_kubernetes' typed classes as the
         program builds them (AWS resources stay plain CustomResources).

The goal (issue 3): program time <= 1.5 x `bare` time, per environment and in total. The program's
time is also split into loading the repository + computing the desired state (`load_desired_state`,
timed on its own) and the rest (registration). Every figure is the median of --runs timed runs after
one warm-up; runs are interleaved (program, then bare, environment after environment) so that a
change of machine load hits both alike. `tree`, `typed` and preview runs are measured on the first
environment only unless --extras all. When the goal is missed (or --profile always) one program run
and one bare run go under cProfile and the difference is printed.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import platform
import pstats
import re
import resource
import shutil
import sys
import tempfile
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/bench_program.py` puts bench/ first, not the root
    sys.path.insert(0, str(ROOT))

from bench.bench_validate import Series, validated_fleet, fmt_mb, fmt_s  # noqa: E402
from bench.fleet import generate_fleet  # noqa: E402

OVERHEAD_GOAL = 1.5
PROJECT = "sluice"

# The baseline "program": run_program runs it like infra/__main__.py, under the same mocks; it calls
# the registration function this file has put in a stand-in module.
HOLDER = "_sluice_bench_baseline"
BASELINE_MAIN = f'''"""Bare baseline written by bench/bench_program.py: registers what the harness hands it."""
import {HOLDER}

{HOLDER}.register()
'''


def peak_rss_kb() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss // 1024 if sys.platform == "darwin" else rss


def current_rss_kb() -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


@dataclass
class EnvFigures:
    name: str
    resources: int = 0
    custom: int = 0
    program: Series = field(default_factory=lambda: Series("program"))
    bare: Series = field(default_factory=lambda: Series("bare"))
    load: Series = field(default_factory=lambda: Series("load_desired_state"))
    extras: dict[str, Series] = field(default_factory=dict)

    @property
    def components(self) -> int:
        return self.resources - self.custom


# --- baselines -------------------------------------------------------------------------------------

def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def _provider_urn(provider: str) -> str:
    return provider.rsplit("::", 1)[0] if provider else ""


def bare_registrations(records: list) -> Callable[[], None]:
    """Each recorded custom resource, flat: same type, name and inputs; no parent, provider or component."""
    import pulumi

    customs = [(r.type, r.name, r.inputs) for r in records if r.custom]

    def register() -> None:
        for type_, name, inputs in customs:
            if type_.startswith("pulumi:providers:"):
                pulumi.ProviderResource(type_.split(":", 2)[2], name, inputs)
            else:
                pulumi.CustomResource(type_, name, props=inputs)

    return register


def tree_registrations(records: list, typed: bool) -> Callable[[], None]:
    """Every recorded resource with its parent and provider; with `typed`, Kubernetes objects by their classes."""
    import pulumi
    import pulumi_kubernetes as k8s

    classes = {
        "kubernetes:core/v1:Namespace": k8s.core.v1.Namespace,
        "kubernetes:core/v1:ConfigMap": k8s.core.v1.ConfigMap,
        "kubernetes:core/v1:Service": k8s.core.v1.Service,
        "kubernetes:apps/v1:Deployment": k8s.apps.v1.Deployment,
        "kubernetes:policy/v1:PodDisruptionBudget": k8s.policy.v1.PodDisruptionBudget,
    }
    plan = []  # (kind, type, name, inputs or kwargs, parent urn, provider urn, urn), computed outside the timing
    for r in records:
        kwargs = {_snake(k): v for k, v in r.inputs.items() if k not in ("apiVersion", "kind")}
        if not r.custom:
            kind, payload = "component", None
        elif r.type.startswith("pulumi:providers:"):
            kind, payload = "provider", r.inputs
        elif typed and r.type in classes:
            kind, payload = "typed", kwargs
        elif typed and r.type.startswith("kubernetes:"):
            kind, payload = "custom-kind", dict(kwargs, api_version=r.inputs["apiVersion"], kind=r.inputs["kind"])
        else:
            kind, payload = "custom", r.inputs
        plan.append((kind, r.type, r.name, payload, r.parent, _provider_urn(r.provider), r.urn))

    def register() -> None:
        made: dict[str, Any] = {}
        for kind, type_, name, payload, parent, provider, urn in plan:
            opts = pulumi.ResourceOptions(parent=made.get(parent), provider=made.get(provider))
            if kind == "component":
                made[urn] = pulumi.ComponentResource(type_, name, None, opts)
                made[urn].register_outputs({})
            elif kind == "provider":
                made[urn] = pulumi.ProviderResource(type_.split(":", 2)[2], name, payload, opts)
            elif kind == "typed":
                made[urn] = classes[type_](name, opts=opts, **payload)
            elif kind == "custom-kind":
                made[urn] = k8s.apiextensions.CustomResource(name, opts=opts, **payload)
            else:
                made[urn] = pulumi.CustomResource(type_, name, props=payload, opts=opts)

    return register


BASELINES = {
    "bare": ("custom resources only (no components), flat, default provider, pulumi.CustomResource", False),
    "tree": ("all resources incl. components, recorded parents and providers, pulumi.CustomResource", True),
    "typed": ("as tree, Kubernetes objects via pulumi_kubernetes typed classes", True),
}


# --- runs ------------------------------------------------------------------------------------------

class Bench:
    def __init__(self, fleet_dir: Path, baseline_dir: Path) -> None:
        from reconciler.adapters.offline_engine import run_program

        self.fleet_dir = fleet_dir
        self.baseline_dir = baseline_dir
        self.run_program = run_program
        (baseline_dir / "__main__.py").write_text(BASELINE_MAIN, encoding="utf-8")
        self.holder = types.ModuleType(HOLDER)
        sys.modules[HOLDER] = self.holder

    def program(self, env: str, preview: bool) -> tuple[float, list]:
        gc.collect()
        start = time.perf_counter()
        result = self.run_program(self.fleet_dir / "infra", project=PROJECT, stack=env,
                                  config={"environment": env}, preview=preview)
        return time.perf_counter() - start, result.resources

    def baseline(self, env: str, register: Callable[[], None], preview: bool) -> tuple[float, list]:
        self.holder.register = register
        gc.collect()
        start = time.perf_counter()
        result = self.run_program(self.baseline_dir, project=PROJECT, stack=env, config={}, preview=preview)
        return time.perf_counter() - start, result.resources

    def load(self, env: str) -> float:
        from reconciler.adapters.deployable import load_desired_state

        gc.collect()
        start = time.perf_counter()
        load_desired_state(self.fleet_dir, env)
        return time.perf_counter() - start


def check_same(label: str, env: str, program: list, baseline: list, same_urns: bool) -> None:
    """The baseline must register what it claims to: the same count, and the same URNs for a tree."""
    expected = [r for r in program if r.custom] if not same_urns else program
    if len(baseline) != len(expected):
        raise SystemExit(f"bench: {label} baseline for {env} registered {len(baseline)} resources, "
                         f"expected {len(expected)}")
    if same_urns and sorted(r.urn for r in baseline) != sorted(r.urn for r in program):
        raise SystemExit(f"bench: {label} baseline for {env} did not reproduce the program's URNs")


# --- profile ---------------------------------------------------------------------------------------

_GROUPS = (
    ("/pulumi_kubernetes/", "pulumi_kubernetes"),
    ("/pulumi_aws/", "pulumi_aws"),
    ("/pulumi/", "pulumi SDK"),
    ("/google/protobuf/", "protobuf"),
    ("/grpc/", "grpc"),
    ("/reconciler/", "reconciler (load + desired state)"),
    ("/infra/", "infra program + components"),
    ("/asyncio/", "asyncio"),
    ("/json/", "json"),
    ("traceback.py", "traceback (stack capture)"),
    ("linecache.py", "traceback (stack capture)"),
    ("pathlib.py", "pathlib (stack capture URIs)"),
    ("/ruamel/", "ruamel.yaml"),
    ("/pydantic", "pydantic"),
    ("threading.py", "threading"),
    ("/logging/", "logging"),
    ("typing.py", "typing (SDK input-type introspection)"),
    ("concurrent/futures", "concurrent.futures"),
)


def _group(filename: str) -> str:
    if filename == "~":
        return "built-ins (C)"
    for needle, name in _GROUPS:
        if needle in filename:
            return name
    return "other"


def profile_of(call: Callable[[], Any]) -> pstats.Stats:
    profiler = cProfile.Profile()
    gc.collect()
    profiler.enable()
    call()
    profiler.disable()
    return pstats.Stats(profiler)


def profile_report(program: pstats.Stats, bare: pstats.Stats, top: int) -> str:
    out = io.StringIO()
    p_stats, b_stats = program.stats, bare.stats  # type: ignore[attr-defined]
    p_total = sum(v[2] for v in p_stats.values())
    b_total = sum(v[2] for v in b_stats.values())
    print(f"profiled run: program {p_total:.2f} s, bare {b_total:.2f} s (cProfile inflates both). cProfile sees the\n"
          "main thread only: the mock monitor answers RegisterResource on executor threads, and time the main\n"
          "thread waits for the GIL is charged to whatever it was running, so small own times are noisy.\n", file=out)

    groups: dict[str, list[float]] = {}
    for stats, column in ((p_stats, 0), (b_stats, 1)):
        for (filename, _, _), (_, _, tottime, _, _) in stats.items():
            groups.setdefault(_group(filename), [0.0, 0.0])[column] += tottime
    print(f"{'own time by package':<40}{'program':>10}{'bare':>10}{'extra':>10}", file=out)
    for name, (p, b) in sorted(groups.items(), key=lambda item: item[1][0] - item[1][1], reverse=True):
        if p >= 0.01 or b >= 0.01:
            print(f"{name:<40}{p:>9.2f}s{b:>9.2f}s{p - b:>+9.2f}s", file=out)

    def label(key: tuple) -> str:
        filename, line, name = key
        return f"{Path(filename).name}:{line}({name})" if filename != "~" else name

    print(f"\n{'functions with the most extra own time':<62}{'program':>9}{'calls':>9}{'bare':>9}{'calls':>9}",
          file=out)
    keys = set(p_stats) | set(b_stats)
    empty = (0, 0, 0.0, 0.0, {})

    def extra(key: tuple) -> float:
        return p_stats.get(key, empty)[2] - b_stats.get(key, empty)[2]

    for key in sorted(keys, key=extra, reverse=True)[:top]:
        p, b = p_stats.get(key, empty), b_stats.get(key, empty)
        print(f"{label(key)[:61]:<62}{p[2]:>8.2f}s{p[1]:>9}{b[2]:>8.2f}s{b[1]:>9}", file=out)

    print(f"\n{'selected cumulative times':<62}{'program':>9}{'calls':>9}{'bare':>9}{'calls':>9}", file=out)
    wanted = ("load_desired_state", "load_repository", "desired_state", "deploy", "kubernetes_object",
              "_get_stack_trace", "serialize_properties",
              "prepare_resource", "do_register", "resolve_outputs", "from_input", "contains_unknowns",
              "RegisterResource", "new_resource")
    for name in wanted:
        p_hits = [(k, v) for k, v in p_stats.items() if k[2] == name]
        b_hits = [(k, v) for k, v in b_stats.items() if k[2] == name]
        if not p_hits and not b_hits:
            continue
        p_ct = max((v[3] for _, v in p_hits), default=0.0)  # recursive entries: the outermost
        b_ct = max((v[3] for _, v in b_hits), default=0.0)
        p_n = sum(v[1] for _, v in p_hits)
        b_n = sum(v[1] for _, v in b_hits)
        print(f"{name:<62}{p_ct:>8.2f}s{p_n:>9}{b_ct:>8.2f}s{b_n:>9}", file=out)

    print("\nprogram run, top entries by cumulative time\n", file=out)
    program.stream = out  # type: ignore[attr-defined]
    program.strip_dirs().sort_stats("cumulative").print_stats(top)
    return out.getvalue()


# --- main ------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_program", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--versions", type=int, default=10, help="release files per model (default: 10)")
    parser.add_argument("--environments", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=int, default=3, help="timed runs per measurement (default: 3)")
    parser.add_argument("--extras", choices=("first", "all", "none"), default="first",
                        help="environments that also get the tree/typed baselines and preview runs (default: first)")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="write the fleet to DIR and keep it")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--profile", choices=("auto", "always", "never"), default="auto",
                        help="cProfile one program and one bare run: when the goal is missed (auto), always or never")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the goal is missed")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.environments < 1:
        parser.error("need at least one run and one environment")

    with tempfile.TemporaryDirectory(prefix="sluice-bench-program-") as tmp:
        fleet_dir = args.keep if args.keep else Path(tmp) / "fleet"
        baseline_dir = Path(tmp) / "baseline"
        baseline_dir.mkdir()
        try:
            return _bench(args, fleet_dir, baseline_dir)
        finally:
            sys.modules.pop(HOLDER, None)


def _bench(args: argparse.Namespace, fleet_dir: Path, baseline_dir: Path) -> int:
    started = time.perf_counter()
    fleet = generate_fleet(fleet_dir, args.models, args.versions, args.environments, args.seed)
    shutil.copytree(ROOT / "infra", fleet_dir / "infra", ignore=shutil.ignore_patterns("__pycache__"),
                    dirs_exist_ok=True)
    environments = sorted(p.stem for p in (fleet_dir / "environments").glob("*.yaml"))
    environments.sort(key=lambda e: (e not in ("staging", "prod"), e != "staging", e))  # staging, prod, others
    extras_envs = {"first": environments[:1], "all": environments, "none": []}[args.extras]

    print(f"Sluice program benchmark: {args.models} models x {args.versions} versions, {len(environments)} "
          f"environments ({', '.join(environments)}), seed {args.seed}")
    print(f"fleet: {fleet.bytes_written / 1e6:.1f} MB written in {fleet.seconds:.2f} s to {fleet_dir}")
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.platform()}; pulumi "
          f"{_version('pulumi')}, pulumi_aws {_version('pulumi_aws')}, pulumi_kubernetes {_version('pulumi_kubernetes')}")
    print(f"{args.runs} timed runs per measurement after one warm-up, medians\n")

    # The fleet must be deployable: `reconciler validate` with 0 errors.
    report, _ = validated_fleet(fleet_dir)
    if report is None:
        return 1

    bench = Bench(fleet_dir, baseline_dir)
    rss_start = peak_rss_kb()
    figures = {env: EnvFigures(env) for env in environments}
    registrations: dict[str, dict[str, Callable[[], None]]] = {}

    def record(env: str, records: list) -> None:
        """The first program run of an environment: its counts and the baselines' registrations."""
        f = figures[env]
        f.resources, f.custom = len(records), sum(1 for r in records if r.custom)
        registrations[env] = {"bare": bare_registrations(records)}
        if env in extras_envs:
            registrations[env]["tree"] = tree_registrations(records, typed=False)
            registrations[env]["typed"] = tree_registrations(records, typed=True)
        checks[env] = records

    def baseline(env: str, label: str, preview: bool) -> float:
        seconds, made = bench.baseline(env, registrations[env][label], preview)
        if (env, label, preview) not in checked:  # the first run of each: does it register what it claims to?
            check_same(label, env, checks[env], made, same_urns=BASELINES[label][1])
            checked.add((env, label, preview))
        return seconds

    checks: dict[str, list] = {}  # the program's records per environment, to check the baselines against
    checked: set[tuple[str, str, bool]] = set()
    # Warm-up on the first environment: imports, first-use caches of the SDK and the provider classes
    # (the program uses the typed classes and components the other baselines use).
    first = environments[0]
    record(first, bench.program(first, preview=False)[1])
    baseline(first, "bare", preview=False)
    bench.load(first)
    rss_warm = peak_rss_kb()

    # Goal: program vs bare, interleaved, every environment; then load_desired_state on its own.
    for _ in range(args.runs):
        for env in environments:
            f = figures[env]
            seconds, records = bench.program(env, preview=False)
            if env not in registrations:
                record(env, records)
            elif len(records) != f.resources:
                raise SystemExit(f"bench: program registered {len(records)} resources for {env}, "
                                 f"{f.resources} before: not deterministic")
            f.program.times.append(seconds)
            del records
            f.bare.times.append(baseline(env, "bare", preview=False))
    for _ in range(args.runs):
        for env in environments:
            figures[env].load.times.append(bench.load(env))

    # Extras: the other baselines and preview runs.
    for _ in range(args.runs):
        for env in extras_envs:
            f = figures[env]
            for label in ("tree", "typed"):
                f.extras.setdefault(label, Series(label)).times.append(baseline(env, label, preview=False))
            f.extras.setdefault("program preview", Series("program preview")).times.append(
                bench.program(env, preview=True)[0])
            f.extras.setdefault("bare preview", Series("bare preview")).times.append(
                baseline(env, "bare", preview=True))
    rss_end = peak_rss_kb()

    # Report
    print("Program vs bare, update (preview=False). 'resources' counts what the program registers, custom")
    print("resources + components (the stack itself excluded); the bare baseline registers the custom")
    print("resources only (no components). load = load_desired_state (repository + desired state), timed")
    print("on its own; registration = program - load.\n")
    header = (f"{'environment':<16}{'resources':>16}{'program':>10}{'res/s':>7}{'bare':>9}{'res/s':>7}"
              f"{'ratio':>7}{'load':>9}{'registration':>14}{'reg/bare':>9}")
    print(header)
    total = {"resources": 0, "custom": 0, "program": 0.0, "bare": 0.0, "load": 0.0}
    for env in environments:
        f = figures[env]
        p, b, ld = f.program.median, f.bare.median, f.load.median
        total["resources"] += f.resources
        total["custom"] += f.custom
        total["program"] += p
        total["bare"] += b
        total["load"] += ld
        print(f"{env:<16}{f'{f.resources} ({f.custom}+{f.components})':>16}{p:>9.2f}s{f.resources / p:>7.0f}"
              f"{b:>8.2f}s{f.custom / b:>7.0f}{p / b:>6.2f}x{ld:>8.2f}s{p - ld:>8.2f}s {100 * (p - ld) / p:>3.0f}%"
              f"{(p - ld) / b:>8.2f}x")
    tp, tb, tl = total["program"], total["bare"], total["load"]
    resources, custom = int(total["resources"]), int(total["custom"])
    print(f"{'total':<16}{f'{resources} ({custom}+{resources - custom})':>16}{tp:>9.2f}s{resources / tp:>7.0f}"
          f"{tb:>8.2f}s{custom / tb:>7.0f}{tp / tb:>6.2f}x{tl:>8.2f}s{tp - tl:>8.2f}s {100 * (tp - tl) / tp:>3.0f}%"
          f"{(tp - tl) / tb:>8.2f}x")
    print(f"\nper resource: program {1000 * tp / resources:.2f} ms (per custom resource "
          f"{1000 * tp / custom:.2f} ms), bare {1000 * tb / custom:.2f} ms per custom resource")
    spread = max((max(s.times) - min(s.times)) / s.median
                 for f in figures.values() for s in (f.program, f.bare))
    print(f"largest spread of a series (max - min) / median: {100 * spread:.0f}%")

    if extras_envs:
        print("\nOther baselines and preview (preview=True), same mocks:\n")
        print(f"{'environment':<16}{'measurement':<18}{'resources':>10}{'median':>10}{'min':>9}{'res/s':>7}"
              f"{'program/this':>14}   what")
        for env in extras_envs:
            f = figures[env]
            p = f.program.median
            rows = [("program", f.resources, f.program, p, "infra/__main__.py, update"),
                    ("bare", f.custom, f.bare, p, BASELINES["bare"][0]),
                    ("tree", f.resources, f.extras["tree"], p, BASELINES["tree"][0]),
                    ("typed", f.resources, f.extras["typed"], p, BASELINES["typed"][0]),
                    ("program preview", f.resources, f.extras["program preview"], None, "infra/__main__.py, preview"),
                    ("bare preview", f.custom, f.extras["bare preview"], f.extras["program preview"].median,
                     "bare, preview")]
            for label, count, series, versus, what in rows:
                ratio = f"{versus / series.median:.2f}x" if versus is not None and label != "program" else ""
                print(f"{env:<16}{label:<18}{count:>10}{fmt_s(series.median):>10}{fmt_s(series.min):>9}"
                      f"{count / series.median:>7.0f}{ratio:>14}   {what}")

    current = current_rss_kb()
    print(f"\npeak RSS of this process (ru_maxrss): {fmt_mb(rss_start)} before the first run, "
          f"{fmt_mb(rss_warm)} after the warm-up, {fmt_mb(rss_end)} at the end; "
          f"current {fmt_mb(current)}")

    ratio = tp / tb
    per_env_ok = all(f.program.median / f.bare.median <= OVERHEAD_GOAL for f in figures.values())
    ok = ratio <= OVERHEAD_GOAL and per_env_ok
    print(f"\n{'goal (medians)':<52}{'target':>10}{'measured':>10}   result")
    print(f"{'program <= ' + str(OVERHEAD_GOAL) + ' x bare (total)':<52}{'<= 1.50x':>10}{ratio:>9.2f}x   "
          f"{'PASS' if ratio <= OVERHEAD_GOAL else 'MISS'}")
    worst = max(f.program.median / f.bare.median for f in figures.values())
    print(f"{'program <= ' + str(OVERHEAD_GOAL) + ' x bare (worst environment)':<52}{'<= 1.50x':>10}{worst:>9.2f}x   "
          f"{'PASS' if per_env_ok else 'MISS'}")
    print(f"\nbenchmark wall time {time.perf_counter() - started:.0f} s")

    profile_text = None
    if args.profile == "always" or (args.profile == "auto" and not ok):
        env = environments[0]
        print(f"\n{'goal missed: ' if not ok else ''}one program run and one bare run of {env} under cProfile\n")
        program_stats = profile_of(lambda: bench.program(env, preview=False))
        bare_stats = profile_of(lambda: bench.baseline(env, registrations[env]["bare"], preview=False))
        profile_text = profile_report(program_stats, bare_stats, 25)
        print(profile_text)

    if args.json:
        data = {
            "fleet": {"models": args.models, "versions": args.versions, "environments": environments,
                      "seed": args.seed, "bytes": fleet.bytes_written},
            "python": platform.python_version(),
            "runs": args.runs,
            "environments": {
                env: {"resources": f.resources, "custom": f.custom, "components": f.components,
                      "series": {s.label: {"median_s": s.median, "min_s": s.min, "times_s": s.times}
                                 for s in (f.program, f.bare, f.load, *f.extras.values())}}
                for env, f in figures.items()},
            "total": {"resources": resources, "custom": custom, "program_s": tp, "bare_s": tb, "load_s": tl,
                      "ratio": ratio},
            "peak_rss_kb": {"start": rss_start, "after_warm_up": rss_warm, "end": rss_end},
            "goal": {"target": OVERHEAD_GOAL, "pass": ok},
        }
        args.json.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")

    return 1 if (args.strict and not ok) else 0


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "?"


if __name__ == "__main__":
    raise SystemExit(main())
