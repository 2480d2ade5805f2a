"""How fast is `reconciler validate` on a big repository, compared with plain JSON Schema checking?

    python bench/bench_validate.py            # from the repository root
    python -m bench.bench_validate --repeat 7 --models 200

Generates a synthetic fleet (bench/fleet.py; default 100 models x 10 versions = 1,000 release
files and 10 environments) in a temporary directory, checks that it validates with zero errors,
then measures

  (a) `python -m reconciler validate DIR` as a subprocess: the whole CLI, start-up included;
  (b) `check-jsonschema --schemafile schemas/<kind>.schema.json FILES...` for releases plus
      environments (the sum): what a CI job without Sluice would run;
  (c) `load_repository(DIR)` in this process (time, tracemalloc peak) and the peak RSS of a fresh
      process that imports the loader and loads the fleet;
  (d) `python -m reconciler --help`: start-up time;
  (e) the peak RSS of `python -m reconciler validate` (os.wait4) on fleets of 1,000 and 5,000
      releases (`--memory-at`; 10 versions a model, one environment per 100 releases, at least
      10: the 5,000 fleet is `bench.fleet --models 500 --versions 10 --environments 50`), and its
      cost per 1,000 files above the start-up (a 1-release fleet), which should stay flat.

It prints median and minimum wall times, then the goals with PASS/MISS. Exit status: 1 if the
fleet does not validate cleanly or check-jsonschema rejects it (the figures would be meaningless);
with --strict, also 1 when a goal is missed.
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
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/bench_validate.py` puts bench/ first, not the root
    sys.path.insert(0, str(ROOT))

from bench.fleet import generate_fleet  # noqa: E402

VALIDATE_GOAL_S = 2.0
PEAK_RSS_GOAL_MB = 150  # at 5,000 releases (check-jsonschema: 49 MB on the same files)
PEAK_RSS_GOAL_RELEASES = 5000
HELP_GOAL_S = 0.3

_CHILD_LOAD = """
import json, resource, sys, time
from pathlib import Path


def peak_kb():
    # VmHWM is this process's own high-water mark; ru_maxrss can carry the parent's over fork/exec.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss // 1024 if sys.platform == "darwin" else rss


t0 = time.perf_counter()
from reconciler.adapters.repo_loader import load_repository
t1 = time.perf_counter()
before = peak_kb()
result = load_repository(Path(sys.argv[1]))
t2 = time.perf_counter()
after = peak_kb()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "rss_before_kb": before, "rss_after_kb": after,
                  "errors": len(result.errors)}))
"""


@dataclass
class Run:
    seconds: float
    returncode: int
    output: str
    maxrss_kb: int | None


@dataclass
class Series:
    label: str
    times: list[float] = field(default_factory=list)
    maxrss_kb: list[int] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def min(self) -> float:
        return min(self.times)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def run(cmd: list[str]) -> Run:
    """Run `cmd` from the repository root; wall time and the child's own peak RSS (Linux: os.wait4)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    output = proc.stdout.read()
    proc.stdout.close()
    if hasattr(os, "wait4"):
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        maxrss = usage.ru_maxrss if sys.platform != "darwin" else usage.ru_maxrss // 1024
    else:  # pragma: no cover - Windows
        proc.wait()
        maxrss = None
    return Run(time.perf_counter() - start, proc.returncode, output.decode(errors="replace"), maxrss)


def find_check_jsonschema() -> str:
    """check-jsonschema installed with this interpreter, else the one on PATH."""
    for folder in (Path(sys.executable).parent, Path(sys.prefix) / "bin", Path(sys.prefix) / "Scripts"):
        for name in ("check-jsonschema", "check-jsonschema.exe"):
            if (folder / name).is_file():
                return str(folder / name)
    found = shutil.which("check-jsonschema")
    if found is None:
        sys.exit("bench: check-jsonschema not found next to the interpreter or on PATH "
                 "(pip install check-jsonschema)")
    return found


def fail(title: str, output: str) -> None:
    bar = "!" * 78
    lines = output.strip().splitlines()
    shown = "\n".join(lines[:40]) + (f"\n... ({len(lines) - 40} more lines)" if len(lines) > 40 else "")
    print(f"\n{bar}\nBENCHMARK INVALID: {title}\n{bar}\n{shown}\n{bar}", file=sys.stderr)



def validated_fleet(fleet_dir: Path, py: str = sys.executable) -> tuple[dict | None, str]:
    """`reconciler validate --format json` on a generated fleet: (report, output), or (None, output)
    after saying why; a benchmark on a fleet with errors would time the wrong thing."""
    check = run([py, "-m", "reconciler", "validate", str(fleet_dir), "--format", "json"])
    try:
        report = json.loads(check.output[check.output.index("{"):])
    except ValueError:
        report = None
    if check.returncode != 0 or report is None or report["errors"]:
        fail(f"`reconciler validate` exited {check.returncode} on the generated fleet (expected 0 and no errors)",
             check.output)
        return None, check.output
    return report, check.output

def fmt_s(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.3f} s"


def fmt_mb(kb: float | None) -> str:
    return "-" if kb is None else f"{kb / 1024:.0f} MB"


@dataclass
class MemoryPoint:
    releases: int
    environments: int
    files: int
    peak_rss_kb: int

    def mb_per_1000_files(self, startup: "MemoryPoint") -> float:
        """Peak RSS above the start-up's, per 1,000 files: flat when memory grows linearly."""
        return (self.peak_rss_kb - startup.peak_rss_kb) / 1024 / (self.files - startup.files) * 1000


def measure_memory(sizes: list[int], seed: int, py: str = sys.executable) -> list[MemoryPoint] | None:
    """Peak RSS of one `reconciler validate` run per fleet size, the first for a 1-release fleet
    (start-up); None (after saying why) if a fleet does not validate cleanly."""
    with tempfile.TemporaryDirectory(prefix="sluice-bench-memory-") as folder:
        return _measure_memory(sizes, Path(folder), seed, py)


def _measure_memory(sizes: list[int], folder: Path, seed: int, py: str) -> list[MemoryPoint] | None:
    points = []
    for releases in [1, *sizes]:
        models, versions = (1, 1) if releases == 1 else (max(releases // 10, 1), 10)
        environments = 1 if releases == 1 else max(10, releases // 100)
        fleet_dir = folder / f"memory-{releases}"
        generate_fleet(fleet_dir, models, versions, environments, seed)
        measured = run([py, "-m", "reconciler", "validate", str(fleet_dir)])
        if measured.returncode != 0 or measured.maxrss_kb is None:
            fail(f"`reconciler validate` exited {measured.returncode} on the {releases}-release fleet", measured.output)
            return None
        points.append(MemoryPoint(models * versions, environments, models * versions + environments,
                                  measured.maxrss_kb))
        shutil.rmtree(fleet_dir)
    return points


def print_memory(points: list[MemoryPoint]) -> bool:
    """The table of (e); True when the peak at PEAK_RSS_GOAL_RELEASES (if measured) meets the goal."""
    startup, *sized = points
    print(f"\npeak RSS of `reconciler validate` (one run per size, os.wait4); start-up (1 release): "
          f"{fmt_mb(startup.peak_rss_kb)}")
    print(f"{'releases':>10}{'environments':>14}{'files':>8}{'peak RSS':>10}{'MB per 1,000 files':>20}")
    for point in sized:
        print(f"{point.releases:>10,}{point.environments:>14}{point.files:>8,}{fmt_mb(point.peak_rss_kb):>10}"
              f"{point.mb_per_1000_files(startup):>20.1f}")
    at_goal = [p for p in sized if p.releases == PEAK_RSS_GOAL_RELEASES]
    if not at_goal:
        return True
    ok = at_goal[0].peak_rss_kb / 1024 <= PEAK_RSS_GOAL_MB
    print(f"{f'peak RSS at {PEAK_RSS_GOAL_RELEASES:,} releases':<44}{f'<= {PEAK_RSS_GOAL_MB} MB':>13}"
          f"{fmt_mb(at_goal[0].peak_rss_kb):>11}   {'PASS' if ok else 'MISS'}")
    return ok


def profile_load(path: Path, top: int) -> str:
    from reconciler.adapters.repo_loader import load_repository

    profiler = cProfile.Profile()
    profiler.enable()
    load_repository(path)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_validate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--versions", type=int, default=10)
    parser.add_argument("--environments", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per measurement (default: 5)")
    parser.add_argument("--help-repeat", type=int, default=10, help="timed --help runs (default: 10)")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="write the fleet to DIR and keep it")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--profile", choices=("auto", "always", "never"), default="auto",
                        help="cProfile load_repository: when validate misses a goal (auto), always or never")
    parser.add_argument("--memory-at", default="1000,5000", metavar="N,N",
                        help="release counts whose validate peak RSS is measured (default: 1000,5000; '' skips)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)

    tmp = None
    if args.keep:
        fleet_dir = args.keep
    else:
        tmp = tempfile.TemporaryDirectory(prefix="sluice-bench-")
        fleet_dir = Path(tmp.name)
    try:
        return _bench(args, fleet_dir)
    finally:
        if tmp is not None:
            tmp.cleanup()


def _bench(args: argparse.Namespace, fleet_dir: Path) -> int:
    py = sys.executable
    fleet = generate_fleet(fleet_dir, args.models, args.versions, args.environments, args.seed)
    releases = sorted(str(p) for p in (fleet_dir / "releases").glob("*/*.yaml"))
    environments = sorted(str(p) for p in (fleet_dir / "environments").glob("*.yaml"))
    cjs = find_check_jsonschema()
    validate_cmd = [py, "-m", "reconciler", "validate", str(fleet_dir)]
    cjs_cmds = [
        [cjs, "--schemafile", str(ROOT / "schemas" / "release.schema.json"), *releases],
        [cjs, "--schemafile", str(ROOT / "schemas" / "environment.schema.json"), *environments],
    ]
    print(f"Sluice validate benchmark: {args.models} models x {args.versions} versions = {len(releases)} release "
          f"files, {len(environments)} environments (seed {args.seed})")
    print(f"fleet: {fleet.bytes_written / 1e6:.1f} MB written in {fleet.seconds:.2f} s to {fleet_dir}")
    print(f"python {platform.python_version()} ({py}), {os.cpu_count()} CPUs, {platform.platform()}")
    print(f"check-jsonschema: {cjs}; {args.repeat} repetitions after one warm-up run\n")

    # Sanity (doubles as the warm-up): the fleet must validate with zero errors, and pass the schemas.
    invalid = False
    report, validate_output = validated_fleet(fleet_dir, py)
    if report is None:
        return 1
    warnings = len(report["warnings"])
    if report["files"] != len(releases) + len(environments):
        fail(f"validate checked {report['files']} files, expected {len(releases) + len(environments)}", validate_output)
        return 1
    for cmd in cjs_cmds:
        warm = run(cmd)
        if warm.returncode != 0:
            fail(f"check-jsonschema exited {warm.returncode} on the generated fleet ({Path(cmd[2]).name})",
                 warm.output)
            invalid = True

    # (a) validate, the whole CLI, and (b) check-jsonschema on releases + environments, interleaved
    # per repetition so that a change in machine load hits both alike.
    validate = Series("reconciler validate (subprocess)")
    cjs_rel, cjs_env, cjs_total = (Series("check-jsonschema releases"), Series("check-jsonschema environments"),
                                   Series("check-jsonschema total"))
    for _ in range(args.repeat):
        r = run(validate_cmd)
        if r.returncode != 0:
            fail(f"`reconciler validate` exited {r.returncode} during timing", r.output)
            return 1
        validate.times.append(r.seconds)
        if r.maxrss_kb is not None:
            validate.maxrss_kb.append(r.maxrss_kb)
        a, b = run(cjs_cmds[0]), run(cjs_cmds[1])
        cjs_rel.times.append(a.seconds)
        cjs_env.times.append(b.seconds)
        cjs_total.times.append(a.seconds + b.seconds)

    # (e) peak RSS at 1,000 and 5,000 releases, while this process is still small: a child's
    # ru_maxrss starts from its parent's at fork.
    memory_sizes = [int(n) for n in args.memory_at.split(",") if n.strip()]
    memory = measure_memory(memory_sizes, args.seed, py) if memory_sizes else []
    if memory is None:
        return 1

    # (c) a fresh process that imports the loader and loads the fleet: its own peak RSS (run while this
    # process is still small, so fork/exec cannot lend it our high-water mark), then in-process time
    # and one traced run for the peak of Python allocations.
    child = run([py, "-c", _CHILD_LOAD, str(fleet_dir)])
    child_figures = json.loads(child.output.strip().splitlines()[-1]) if child.returncode == 0 else None
    import_start = time.perf_counter()
    from reconciler.adapters.repo_loader import load_repository
    import_s = time.perf_counter() - import_start
    load = Series("load_repository (in-process)")
    gc_time = Series("  of which cyclic garbage collection")
    gc_clock: list[float] = []

    def on_gc(phase: str, info: dict) -> None:
        gc_clock.append(time.perf_counter() if phase == "start" else time.perf_counter() - gc_clock.pop())

    for _ in range(args.repeat):
        gc_clock.clear()
        gc.callbacks.append(on_gc)
        start = time.perf_counter()
        result = load_repository(fleet_dir)
        load.times.append(time.perf_counter() - start)
        gc.callbacks.remove(on_gc)
        gc_time.times.append(sum(gc_clock))
        if result.errors:
            fail("load_repository reported errors", "\n".join(str(f) for f in result.errors[:40]))
            return 1
        del result
    tracemalloc.start()
    load_repository(fleet_dir)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # (d) start-up: --help, and a bare interpreter for reference
    help_ = Series("reconciler --help (subprocess)")
    bare = Series("python -c pass (reference)")
    for _ in range(args.help_repeat):
        r = run([py, "-m", "reconciler", "--help"])
        if r.returncode != 0:
            fail(f"`reconciler --help` exited {r.returncode}", r.output)
            return 1
        help_.times.append(r.seconds)
        bare.times.append(run([py, "-c", "pass"]).seconds)

    # Report
    width = 44
    print(f"{'measurement':<{width}}{'median':>11}{'min':>11}   notes")
    for s, note in (
        (validate, f"max RSS {fmt_mb(max(validate.maxrss_kb) if validate.maxrss_kb else None)} (wait4); "
                   f"{warnings} warnings"),
        (cjs_rel, f"{len(releases)} files"),
        (cjs_env, f"{len(environments)} files"),
        (cjs_total, "sum of the two, per repetition"),
        (load, f"import {import_s:.3f} s (this process)"),
        (gc_time, "gc.callbacks, same runs"),
        (help_, f"n={args.help_repeat}"),
        (bare, f"n={args.help_repeat}"),
    ):
        print(f"{s.label:<{width}}{fmt_s(s.median):>11}{fmt_s(s.min):>11}   {note}")
    print(f"{'load_repository peak traced memory':<{width}}{fmt_mb(traced_peak / 1024):>11}{'':>11}   tracemalloc")
    if child_figures:
        print(f"{'fresh process: import + load, peak RSS':<{width}}{fmt_mb(child_figures['rss_after_kb']):>11}"
              f"{'':>11}   after import {fmt_mb(child_figures['rss_before_kb'])}; "
              f"import {child_figures['import_s']:.3f} s, load {child_figures['load_s']:.3f} s")
    else:
        print(f"fresh-process load failed (exit {child.returncode}):\n{child.output}")

    goals = [
        ("validate <= check-jsonschema", f"<= {cjs_total.median:.3f} s", validate.median,
         validate.median <= cjs_total.median),
        (f"validate < {VALIDATE_GOAL_S:g} s", f"< {VALIDATE_GOAL_S:.3f} s", validate.median,
         validate.median < VALIDATE_GOAL_S),
        (f"--help < {HELP_GOAL_S:g} s", f"< {HELP_GOAL_S:.3f} s", help_.median, help_.median < HELP_GOAL_S),
    ]
    print(f"\n{'goal (medians)':<{width}}{'target':>13}{'measured':>11}   result")
    for name, target, measured, ok in goals:
        print(f"{name:<{width}}{target:>13}{fmt_s(measured):>11}   {'PASS' if ok else 'MISS'}")
    missed = [name for name, *_, ok in goals if not ok]

    if memory and not print_memory(memory):
        missed.append(f"peak RSS at {PEAK_RSS_GOAL_RELEASES:,} releases")

    validate_missed = any(name.startswith("validate") for name in missed)
    if args.profile == "always" or (args.profile == "auto" and validate_missed):
        print("\nvalidate missed a goal: load_repository under cProfile, top entries by cumulative time\n"
              if validate_missed else "\nload_repository under cProfile, top entries by cumulative time\n")
        print(profile_load(fleet_dir, 25))

    if args.json:
        figures = {
            "fleet": {"models": args.models, "versions": args.versions, "environments": args.environments,
                      "seed": args.seed, "release_files": len(releases), "bytes": fleet.bytes_written},
            "python": platform.python_version(),
            "validate_warnings": warnings,
            "series": {s.label: {"median_s": s.median, "min_s": s.min, "times_s": s.times}
                       for s in (validate, cjs_rel, cjs_env, cjs_total, load, gc_time, help_, bare)},
            "validate_peak_rss_kb": max(validate.maxrss_kb) if validate.maxrss_kb else None,
            "load_traced_peak_bytes": traced_peak,
            "fresh_process_load": child_figures,
            "validate_peak_rss": [{"releases": p.releases, "environments": p.environments, "files": p.files,
                                   "peak_rss_kb": p.peak_rss_kb} for p in memory],
            "goals": {name: {"target": target, "measured_s": measured, "pass": ok}
                      for name, target, measured, ok in goals},
        }
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")

    if invalid:
        return 1
    return 1 if (args.strict and missed) else 0


if __name__ == "__main__":
    raise SystemExit(main())
