"""How long does `reconciler lineage` take over a long reconciler history?

    python bench/bench_lineage.py                      # from the repository root: 500 and 2,000 commits
    python -m bench.bench_lineage --commits 2000 5000 --runs 5 --json figures.json

For each size N it builds, in a temporary directory, a git repository of 20 models x 30 versions
(bench/fleet.py) and two environments, then N reconciler-style commits on top, written with one
`git fast-import` (making them with `git commit` would take longer than what is measured): each
commit is one pointer move of one model, as a reconcile pass makes them (start a candidate, advance a
stage, promote with the old stable as standby, retire the standby, or roll back 1 time in 10), with
the bot's identity, Sluice trailers and committer dates a few minutes apart; 1 commit in 8 is in
prod, the rest in staging. Every blob is the whole environment file (~4 KB).

Then, for the model whose chain is longest, and its newest version that served:

  CLI         `python -m reconciler lineage MODEL VERSION PATH --format json` as a subprocess, wall
              time (start-up and loading the working tree included) and peak RSS; its output is
              checked (a full chain; every committed candidate stage shows up as an interval);
  history     `read_history` in this process (the git log, the one `cat-file --batch` and the
              parsing of the revisions that changed the model's entry), and the interval building
              of the whole chain apart from it;
  parse all   the same with `parse_every_revision=True` (every revision parsed: what skipping
              the revisions that leave the entry alone saves);
  per commit  for comparison, what one `git show REV:PATH` per revision costs (the design this
              command avoids), over the first 300 revisions, scaled to N.

Figures are the median (and minimum) of --runs runs. Goal: the CLI under 2 s at 2,000 commits.
Exit 1 if the output is not what the history holds; with --strict, also on a missed goal.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/bench_lineage.py` puts bench/ first, not the root
    sys.path.insert(0, str(ROOT))

from bench.bench_validate import Series, fail, fmt_mb, fmt_s, run  # noqa: E402
from bench.fleet import generate_fleet  # noqa: E402
from reconciler.core.types import version_key  # noqa: E402

TIME_GOAL_S = 2.0
MODELS, VERSIONS = 20, 30
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
BOT = b"Sluice reconciler <reconciler@sluice.invalid>"
ENVIRONMENTS = ("staging", "prod")
NAIVE_SAMPLE = 300


@dataclass
class Pointer:
    stable: str
    pool: str
    replicas: int
    candidate: str | None = None
    stage: int = 0
    standby: str | None = None
    started: datetime = START

    def text(self, name: str) -> str:
        lines = [f"  {name}:", f'    stable: "{self.stable}"']
        if self.candidate is not None:
            lines += [f'    candidate: "{self.candidate}"', f"    stage: {self.stage}",
                      f"    stage_started_at: {self.started:%Y-%m-%dT%H:%M:%SZ}"]
        if self.standby is not None:
            lines.append(f'    standby: "{self.standby}"')
        return "\n".join(lines + [f"    pool: {self.pool}", f"    replicas: {self.replicas}"])


@dataclass
class World:
    """The environments' pointers as the history moves them, and what lineage must find."""

    header: dict[str, str]  # environment -> its file up to `models:`
    pointers: dict[str, dict[str, Pointer]]
    versions: dict[str, list[str]]  # model -> versions, oldest first
    stages: dict[str, int] = field(default_factory=dict)  # model -> stage count (6 canary/shadow, 2 blue-green)
    candidate_moves: dict[tuple[str, str], int] = field(default_factory=dict)  # (model, version) -> stage commits

    def text(self, env: str) -> bytes:
        body = "\n".join(p.text(name) for name, p in sorted(self.pointers[env].items()))
        return f"{self.header[env]}models:\n{body}\n".encode()

    def step(self, rng: random.Random, env: str, when: datetime) -> tuple[str, str, str]:
        """Move one model's pointers one step, as a pass would; (action, model, version)."""
        name = rng.choice(sorted(self.pointers[env]))
        p = self.pointers[env][name]
        versions = self.versions[name]
        if p.candidate is None:
            later = [v for v in versions if version_key(v) > version_key(p.stable)]
            if p.standby is not None and (not later or rng.random() < 0.3):
                retired, p.standby = p.standby, None
                return "retire", name, retired
            if not later:  # nothing left to roll out: a person's edit that moves no pointer
                p.replicas = p.replicas % 4 + 1
                return "scale", name, p.stable
            p.candidate, p.stage, p.started = later[0], 0, when
            self._moved(name, p.candidate)
            return "start", name, p.candidate
        version = p.candidate
        if rng.random() < 0.1:
            p.candidate, p.stage = None, 0
            return "rollback", name, version
        if p.stage + 1 >= self.stages[name] - 1:  # the next stage is the last (100%): promoted at once
            p.standby, p.stable, p.candidate, p.stage = p.stable, version, None, 0
            return "promote", name, version
        p.stage, p.started = p.stage + 1, when
        self._moved(name, version)
        return "advance", name, version

    def _moved(self, model: str, version: str) -> None:
        self.candidate_moves[(model, version)] = self.candidate_moves.get((model, version), 0) + 1


def _data(payload: bytes) -> bytes:
    return b"data %d\n%s\n" % (len(payload), payload)


def build_repository(root: Path, commits: int, seed: int) -> World:
    """The fleet in git, then `commits` pointer moves by the bot, in one fast-import stream."""
    generate_fleet(root, MODELS, VERSIONS, environments=0, seed=seed)
    versions = {folder.name: sorted((p.stem for p in folder.glob("*.yaml")), key=version_key)
                for folder in sorted((root / "releases").iterdir())}
    stages = {model: (2 if "blue-green" in (root / "releases" / model / f"{vs[0]}.yaml").read_text() else 6)
              for model, vs in versions.items()}
    header = {env: (f"# {env}: generated by bench/bench_lineage.py\ncluster:\n  provider: aws-eks\n"
                    f"  region: us-east-1\n  name: llm-{env}\n  kubernetes_version: \"1.33\"\n")
              for env in ENVIRONMENTS}
    pointers = {env: {m: Pointer(vs[0], "a100", 2) for m, vs in versions.items()} for env in ENVIRONMENTS}
    world = World(header, pointers, versions, stages)
    rng = random.Random(seed)
    stream = bytearray()
    when = START
    initial = [b"M 100644 inline " + p.relative_to(root).as_posix().encode() + b"\n" + _data(p.read_bytes())
               for p in sorted((root / "releases").rglob("*.yaml"))]
    initial += [b"M 100644 inline environments/%s.yaml\n" % env.encode() + _data(world.text(env)) for env in ENVIRONMENTS]
    stream += _commit(1, None, when, b"Fleet: every model on its first version", b"".join(initial))
    for mark in range(2, commits + 1):
        when += timedelta(minutes=rng.randint(1, 20))
        env = "prod" if rng.random() < 1 / 8 else "staging"
        action, model, version = world.step(rng, env, when)
        message = (f"{action}: {model} {version} in {env}\n\nSluice-Action: {action}\nSluice-Environment: {env}\n"
                   f"Sluice-Model: {model}\nSluice-Version: {version}\nSluice-At: {when:%Y-%m-%dT%H:%M:%SZ}").encode()
        change = b"M 100644 inline environments/%s.yaml\n" % env.encode() + _data(world.text(env))
        stream += _commit(mark, mark - 1, when, message, change)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    subprocess.run(["git", "fast-import", "--quiet"], cwd=root, input=bytes(stream), check=True)
    subprocess.run(["git", "reset", "-q", "--hard", "main"], cwd=root, check=True)
    return world


def _commit(mark: int, parent: int | None, when: datetime, message: bytes, changes: bytes) -> bytes:
    stamp = b"%d +0000" % int(when.timestamp())
    head = b"commit refs/heads/main\nmark :%d\nauthor %s %s\ncommitter %s %s\n" % (mark, BOT, stamp, BOT, stamp)
    return head + _data(message) + (b"from :%d\n" % parent if parent else b"") + changes + b"\n"


def target(world: World) -> tuple[str, str]:
    """The busiest model and its newest version that reached a candidate stage: the longest record."""
    moves: dict[str, int] = {}
    for (model, _), count in world.candidate_moves.items():
        moves[model] = moves.get(model, 0) + count
    model = max(sorted(moves), key=lambda m: moves[m])
    return model, max((v for m, v in world.candidate_moves if m == model), key=version_key)


def bench_size(commits: int, runs: int, seed: int, keep: Path | None) -> dict:
    from reconciler.adapters.history import read_history
    from reconciler.adapters.repo_loader import load_repository
    from reconciler.cli.lineage import lineage_report
    from reconciler.core.lineage import release_chain

    with tempfile.TemporaryDirectory(prefix="sluice-lineage-") as tmp:
        root = keep / f"history-{commits}" if keep else Path(tmp) / "repo"
        root.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        world = build_repository(root, commits, seed)
        built = time.perf_counter() - started
        model, version = target(world)
        cli = Series("cli")
        output = ""
        for _ in range(runs):
            done = run([sys.executable, "-m", "reconciler", "lineage", model, version, str(root), "--format", "json"])
            if done.returncode != 0:
                fail(f"reconciler lineage exited {done.returncode}", done.output)
                raise SystemExit(1)
            cli.times.append(done.seconds)
            if done.maxrss_kb:
                cli.maxrss_kb.append(done.maxrss_kb)
            output = done.output
        report = json.loads(output)
        _check(report, world, model, version, commits)
        repo = load_repository(root).repository
        chain = release_chain(lambda v: repo.release(model, v), version)
        files = [repo.release_file(model, r.version) for r in chain.releases]
        history, intervals, parse_all = Series("history"), Series("intervals"), Series("parse every revision")
        for _ in range(runs):
            t0 = time.perf_counter()
            read = read_history(root, model, files)
            t1 = time.perf_counter()
            lineage_report(chain, files, read)
            t2 = time.perf_counter()
            read_history(root, model, files, parse_every_revision=True)
            history.times.append(t1 - t0)
            intervals.times.append(t2 - t1)
            parse_all.times.append(time.perf_counter() - t2)
        naive = _per_commit(root, min(NAIVE_SAMPLE, commits)) * commits / min(NAIVE_SAMPLE, commits)
        return {"commits": commits, "model": model, "version": version, "chain": len(report["chain"]),
                "intervals": sum(len(v["served"]) for v in report["chain"]), "build_s": built,
                "cli_s": cli.median, "cli_min_s": cli.min, "cli_maxrss_kb": max(cli.maxrss_kb, default=None),
                "history_s": history.median, "intervals_s": intervals.median, "parse_every_revision_s": parse_all.median,
                "per_commit_show_s": naive}


def _check(report: dict, world: World, model: str, version: str, commits: int) -> None:
    entry = report["chain"][0]
    candidate = [s for s in entry["served"] if s["role"] == "candidate"]
    problems = []
    if not report["complete"] or len(report["chain"]) != world.versions[model].index(version) + 1:
        problems.append(f"chain of {len(report['chain'])} versions, complete={report['complete']}")
    if len(candidate) != world.candidate_moves[(model, version)]:
        problems.append(f"{len(candidate)} candidate intervals, {world.candidate_moves[(model, version)]} committed")
    if report["history"]["commits"] != commits or report["history"]["unreadable_revisions"]:
        problems.append(f"history: {report['history']}")
    if problems:
        fail("lineage does not match the history it was built from", "\n".join(problems))
        raise SystemExit(1)


def _per_commit(root: Path, sample: int) -> float:
    """`git show REV:environments/staging.yaml` for the first `sample` revisions: seconds."""
    revs = subprocess.run(["git", "rev-list", "--reverse", "HEAD", "--", "environments/"], cwd=root,
                          capture_output=True, text=True, check=True).stdout.split()[:sample]
    start = time.perf_counter()
    for rev in revs:
        subprocess.run(["git", "show", f"{rev}:environments/staging.yaml"], cwd=root, capture_output=True)
    return time.perf_counter() - start


def history_parser(prog: str, doc: str | None, commits: list[int]) -> argparse.ArgumentParser:
    """The options every history benchmark takes: sizes, runs, seed, where to keep and write."""
    parser = argparse.ArgumentParser(prog=prog, description=(doc or "").split("\n\n")[0])
    parser.add_argument("--commits", type=int, nargs="+", default=commits)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="build the repositories here and keep them")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the goal is missed")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = history_parser("python bench/bench_lineage.py", __doc__, [500, 2000])
    args = parser.parse_args(argv)
    rows = []
    print(f"{'commits':>8} {'chain':>5} {'intervals':>9} {'CLI':>9} {'(min)':>9} {'RSS':>7} {'history':>9} "
          f"{'intervals':>9} {'parse all':>10} {'git show/commit':>16}")
    for size in args.commits:
        row = bench_size(size, args.runs, args.seed, args.keep)
        rows.append(row)
        print(f"{size:>8} {row['chain']:>5} {row['intervals']:>9} {fmt_s(row['cli_s']):>9} {fmt_s(row['cli_min_s']):>9} "
              f"{fmt_mb(row['cli_maxrss_kb']):>7} {fmt_s(row['history_s']):>9} {fmt_s(row['intervals_s']):>9} "
              f"{fmt_s(row['parse_every_revision_s']):>10} {fmt_s(row['per_commit_show_s']):>16}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    largest = max(rows, key=lambda r: r["commits"])
    met = largest["cli_s"] < TIME_GOAL_S or largest["commits"] > 2000
    print(f"goal: the CLI under {TIME_GOAL_S:g} s at 2,000 commits: {'met' if met else 'MISSED'}")
    return 1 if args.strict and not met else 0


if __name__ == "__main__":
    raise SystemExit(main())
