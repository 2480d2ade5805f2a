"""How long does `reconciler validate --base REF` take when REF has a long history?

    python bench/bench_immutability.py                 # from the repository root: 10,000 commits
    python -m bench.bench_immutability --commits 2000 10000 --runs 5 --json figures.json

For each size N it builds, in a temporary directory, a git repository whose `main` has N commits,
written with one `git fast-import` (bench/bench_lineage.py does the same for environments): a
fleet of --models x --versions release files (bench/fleet.py) and one environment. The first commit
holds the environment and each model's first version; then, one per commit, the other versions
are released oldest first, spread evenly over the history; --withdrawn of them (never a model's
first version) are deleted again 10 to 500 commits after their release; every other commit edits
the environment file, as the reconciler's commits do. Then the working tree adds every withdrawn
file back: half with the bytes released, half with another `description` (a value: an error).

Measured, median (and minimum) of --runs:

  history     `read_release_history` in this process: the one `git log --raw` of releases/, the
              blob ids compared, the one `git cat-file --batch` and the parsing of the contents
              that differ (half the withdrawn files);
  base        `load_base`, all `validate --base` reads from git: one `git ls-tree` of the tip's
              releases/, the blob ids compared with the working tree's (only differing files
              are read and parsed: none here), and the history above;
  CLI --base  `python -m reconciler validate --base main DIR --format json` as a subprocess, wall
              time; its findings are checked: exactly one `immutable` error per file
              re-added with other values, naming the commit that released it, and nothing else;
  CLI         the same without --base, for comparison (the difference is what --base costs);
  per commit  for comparison, one `git ls-tree -r REV releases/` per commit that touched
              releases/ (the design this avoids: a call per commit), over the first 300, scaled.

Goal: reading the history under 1 s at 10,000 commits. Exit 1 if the
findings are not what the history holds; with --strict, also on a missed goal.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/bench_immutability.py` puts bench/ first, not the root
    sys.path.insert(0, str(ROOT))

from bench.bench_lineage import _commit, _data, history_parser  # noqa: E402
from bench.bench_validate import Series, fail, fmt_s, run  # noqa: E402
from bench.fleet import generate_fleet  # noqa: E402
from reconciler.core.types import version_key  # noqa: E402

HISTORY_GOAL_S = 1.0
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
NAIVE_SAMPLE = 300
OTHER_VALUES = b"description: Re-released with other values.\n"


def build_repository(root: Path, commits: int, models: int, versions: int, withdrawn: int,
                     seed: int) -> dict[str, int]:
    """The history in git and the working tree with the withdrawn files back; {file re-added with
    other values: the fast-import mark of the commit that released it}."""
    generate_fleet(root, models, versions, environments=1, seed=seed)
    files = sorted((p for p in (root / "releases").rglob("*.yaml")),
                   key=lambda p: (version_key(p.stem), p.parent.name))
    first = {min(folder.glob("*.yaml"), key=lambda p: version_key(p.stem)) for folder in (root / "releases").iterdir()}
    later = [p for p in files if p not in first]
    if len(later) + len(first) + withdrawn >= commits:
        raise SystemExit(f"{commits} commits are too few for {len(files)} releases and {withdrawn} withdrawals")
    rng = random.Random(seed)
    gone = set(rng.sample(later, withdrawn))
    env_path = next((root / "environments").glob("*.yaml"))
    env_text, env_rel = env_path.read_bytes(), env_path.relative_to(root).as_posix().encode()
    rel = {p: p.relative_to(root).as_posix().encode() for p in files}
    release_at = {mark: later[i] for i, mark in
                  enumerate(sorted(rng.sample(range(2, commits + 1 - withdrawn), len(later))))}
    delete_at: dict[int, Path] = {}
    released_by: dict[Path, int] = {}
    stream = bytearray()
    when = START
    initial = [b"M 100644 inline %s\n" % rel[p] + _data(p.read_bytes()) for p in sorted(first)]
    initial.append(b"M 100644 inline %s\n" % env_rel + _data(env_text))
    stream += _commit(1, None, when, b"Fleet: every model on its first version", b"".join(initial))
    mark = 1
    while mark < commits:
        mark += 1
        when += timedelta(minutes=rng.randint(1, 20))
        if mark in release_at:
            path = release_at[mark]
            released_by[path] = mark
            if path in gone:
                at = min(mark + rng.randint(10, 500), commits)
                while at in delete_at or at in release_at:
                    at = at + 1 if at < commits else rng.randint(mark + 1, commits)
                delete_at[at] = path
            message, change = (f"Release {path.parent.name} {path.stem}",
                               b"M 100644 inline %s\n" % rel[path] + _data(path.read_bytes()))
        elif mark in delete_at:
            path = delete_at[mark]
            message, change = f"Withdraw {path.parent.name} {path.stem}", b"D %s\n" % rel[path]
        else:
            message = f"reconcile pass {mark}"
            change = b"M 100644 inline %s\n" % env_rel + _data(env_text + b"# pass %d\n" % mark)
        stream += _commit(mark, mark - 1, when, message.encode(), change)
    assert len(delete_at) == withdrawn, "every withdrawn release is deleted within the history"
    contents = {p: p.read_bytes() for p in gone}
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    subprocess.run(["git", "fast-import", "--quiet"], cwd=root, input=bytes(stream), check=True)
    subprocess.run(["git", "reset", "-q", "--hard", "main"], cwd=root, check=True)
    other: dict[str, int] = {}
    for i, path in enumerate(sorted(gone)):
        data = contents[path]
        if i % 2:
            data = re.sub(rb"^description: .*\n", OTHER_VALUES, data, count=1, flags=re.MULTILINE)
            other[path.relative_to(root).as_posix()] = released_by[path]
        path.write_bytes(data)
    return other


def bench_size(commits: int, args: argparse.Namespace) -> dict:
    from reconciler.adapters.base_ref import load_base
    from reconciler.adapters.history import read_release_history

    with tempfile.TemporaryDirectory(prefix="sluice-immutability-") as tmp:
        root = args.keep / f"history-{commits}" if args.keep else Path(tmp) / "repo"
        root.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        other = build_repository(root, commits, args.models, args.versions, args.withdrawn, args.seed)
        built = time.perf_counter() - started
        marks = subprocess.run(["git", "rev-list", "--reverse", "main"], cwd=root, capture_output=True, text=True,
                               check=True).stdout.split()
        tip = load_base(root, "main").tip
        at_tip = {e.file for e in tip.releases}
        judged = {f: (root / f).read_bytes() for f in (p.relative_to(root).as_posix()
                                                       for p in (root / "releases").rglob("*.yaml")) if f not in at_tip}
        history, base, cli, plain = Series("history"), Series("base"), Series("cli --base"), Series("cli")
        read = None
        for _ in range(args.runs):
            t0 = time.perf_counter()
            read = read_release_history(root, "main", judged)
            t1 = time.perf_counter()
            load_base(root, "main")
            base.times.append(time.perf_counter() - t1)
            history.times.append(t1 - t0)
            for series, extra in ((cli, ["--base", "main"]), (plain, [])):
                done = run([sys.executable, "-m", "reconciler", "validate", str(root), *extra, "--format", "json"])
                series.times.append(done.seconds)
                if extra:
                    _check(done, other, marks)
        blobs = sum(len(v) for v in read.earlier.values()) if read else 0
        naive = _per_commit(root, NAIVE_SAMPLE)
        return {"commits": commits, "releases": len(at_tip) + len(judged), "withdrawn": args.withdrawn,
                "release_commits": naive[1], "blobs_read": blobs, "build_s": built,
                "history_s": history.median, "history_min_s": history.min, "base_s": base.median,
                "cli_base_s": cli.median, "cli_base_min_s": cli.min, "cli_s": plain.median,
                "per_commit_ls_tree_s": naive[0]}


def _check(done, other: dict[str, int], marks: list[str]) -> None:
    if done.returncode != 1:
        fail(f"validate --base exited {done.returncode}, not 1", done.output)
        raise SystemExit(1)
    report = json.loads(done.output)
    found = {f["file"]: f["message"] for f in report["errors"] + report["warnings"]}
    expected = {file: marks[mark - 1][:10] for file, mark in other.items()}
    wrong = [f"{file}: {found.get(file)}" for file, sha in expected.items()
             if f"was released with other values in {sha} " not in (found.get(file) or "")]
    extra = sorted(set(found) - set(expected))
    if wrong or extra:
        fail("validate --base does not report what the history holds",
             "\n".join(wrong[:5] + [f"unexpected: {f}: {found[f]}" for f in extra[:5]]))
        raise SystemExit(1)


def _per_commit(root: Path, sample: int) -> tuple[float, int]:
    """(seconds for one `git ls-tree -r` per commit that touched releases/, scaled; that commit count)."""
    revs = subprocess.run(["git", "rev-list", "--reverse", "main", "--", "releases/"], cwd=root,
                          capture_output=True, text=True, check=True).stdout.split()
    start = time.perf_counter()
    for rev in revs[:sample]:
        subprocess.run(["git", "ls-tree", "-r", rev, "releases/"], cwd=root, capture_output=True)
    return (time.perf_counter() - start) * len(revs) / max(1, min(sample, len(revs))), len(revs)


def main(argv: list[str] | None = None) -> int:
    parser = history_parser("python bench/bench_immutability.py", __doc__, [10_000])
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--versions", type=int, default=20)
    parser.add_argument("--withdrawn", type=int, default=100, help="releases deleted in the history and re-added")
    args = parser.parse_args(argv)
    rows = []
    print(f"{'commits':>8} {'releases':>8} {'rel. commits':>12} {'blobs read':>10} {'history':>9} {'(min)':>9} "
          f"{'base':>9} {'CLI --base':>10} {'CLI':>9} {'ls-tree/commit':>15}")
    for size in args.commits:
        row = bench_size(size, args)
        rows.append(row)
        print(f"{size:>8} {row['releases']:>8} {row['release_commits']:>12} {row['blobs_read']:>10} "
              f"{fmt_s(row['history_s']):>9} {fmt_s(row['history_min_s']):>9} {fmt_s(row['base_s']):>9} "
              f"{fmt_s(row['cli_base_s']):>10} {fmt_s(row['cli_s']):>9} "
              f"{fmt_s(row['per_commit_ls_tree_s']):>15}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    largest = max(rows, key=lambda r: r["commits"])
    met = largest["history_s"] < HISTORY_GOAL_S
    print(f"goal: the history read under {HISTORY_GOAL_S:g} s at {largest['commits']:,} commits: "
          f"{'met' if met else 'MISSED'} ({fmt_s(largest['history_s'])}); --base adds "
          f"{fmt_s(largest['cli_base_s'] - largest['cli_s'])} to the CLI in all")
    return 1 if args.strict and not met else 0


if __name__ == "__main__":
    raise SystemExit(main())
