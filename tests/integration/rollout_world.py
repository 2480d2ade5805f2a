"""A small world for rollout scenarios: a real git repository, a real Prometheus, the real CLI.

`World.create(...)` copies the example repository's releases/ and environments/ into a fresh
`git init -b main` repository (hermetic git: no user or system config; the reconciler's commits
use its own bot identity), lets the scenario reshape release and environment files, and makes
the initial commit. The starting point is the example with nothing in flight in staging
(chat-assistant on 1.2.0, code-completion on 2.0.0) and chat-assistant 1.3.0 given short stages
(`FAST_CANARY`: 10 minutes each), so a whole rollout fits into an hour of synthetic history. Its
notification targets are removed: tests never post to the internet; scenario 9 points them at a
local server.

A scenario then writes its whole metric history (`Traffic` from tests.prometheus_kit), starts
one Prometheus on it (`world.serve(...)`), and runs passes at successive instants with
`world.pass_at(T)`, which is `reconciler reconcile --at T --prometheus URL --format json`
in-process. Every CLI call sets GIT_AUTHOR_DATE and GIT_COMMITTER_DATE to its `--at`, so a
commit carries the instant it was decided at, as it would in a cron job running on time.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Sequence

import pytest
from ruamel.yaml import YAML

from reconciler.cli.main import main
from tests.conftest import copy_example, load_yaml
from tests.prometheus_kit import Traffic, Value, openmetrics, utc

STAGING = "environments/staging.yaml"
CHAT, CODE = "chat-assistant", "code-completion"
OWNER_COMMENT = "Owned by the support-bot team; the pointers below are the reconciler's to edit."
POOL_COMMENT = "Serving: one replica per live version on the A100 pool."
REPLICAS_COMMENT = "raise to 2 before the holidays"

#: Where every scenario's clock starts: `reconciler start` runs here.
T0 = utc("2026-11-22T10:00:00")

#: chat-assistant 1.3.0's rollout in the world: the example's shape and gates, 10-minute stages.
FAST_CANARY: dict[str, Any] = {
    "strategy": "canary",
    "stages": [
        {"weight": 0},
        {"weight": 1, "min_duration": "10m", "min_requests": 300,
         "gates": [{"metric": "latency_p99_ms", "max_ratio_to_stable": 1.2},
                   {"metric": "ttft_p99_seconds", "max": 1.5}]},
        {"weight": 5, "min_duration": "10m", "min_requests": 1000,
         "gates": [{"metric": "quality_score", "min_ratio_to_stable": 0.98},
                   {"metric": "error_rate", "max_increase_over_stable": 0.005}]},
        {"weight": 25, "min_duration": "10m", "min_requests": 5000,
         "gates": [{"metric": "safety_violation_rate", "max_increase_over_stable": 0.001}]},
        {"weight": 50, "min_duration": "10m", "min_requests": 10000,
         "gates": [{"metric": "user_satisfaction", "min_ratio_to_stable": 0.98}]},
        {"weight": 100},
    ],
    "rollback_triggers": [
        {"metric": "error_rate", "max": 0.05},
        {"metric": "latency_p99_ms", "max": 4000},
        {"metric": "safety_violation_rate", "max": 0.01},
        {"metric": "quality_score", "min": 0.6},
    ],
    "dead_mans_switch": {"max_silence": "10m"},
    "standby_window": "1h",
    "notify": [],
}

#: A healthy version's readings (the stable's, and a candidate's unless a scenario says otherwise).
HEALTHY: dict[str, Any] = {
    "error_ratio": 0.002,
    "latency_p99_ms": 800.0,
    "ttft_p99_seconds": 0.8,
    "gauges": {"sluice_eval_quality_score": 0.86, "sluice_eval_safety_violation_rate": 0.002,
               "sluice_eval_user_satisfaction": 0.91},
}


def at(minutes: float) -> datetime:
    """T0 + minutes: the scenarios' clock."""
    return T0 + timedelta(minutes=minutes)


def z(when: datetime) -> str:
    """2026-11-22T10:12:00Z, as --at and the environment file write it."""
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def steps(first: float, changes: dict[datetime, float]) -> Callable[[datetime], float]:
    """A piecewise-constant value: `first`, then each change's value from its instant on."""
    ordered = sorted(changes.items())

    def value(when: datetime) -> float:
        current = first
        for since, new in ordered:
            if when >= since:
                current = new
        return current
    return value


def split_traffic(model: str, stable: str, candidate: str, weights: dict[datetime, int], *, total: float = 100.0,
                  start: datetime, end: datetime, candidate_until: datetime | None = None,
                  candidate_rps: Value | None = None, **candidate_readings: Any) -> list[Traffic]:
    """Stable and candidate sharing `total` rps by `weights` (instant -> the candidate's percent).

    Stable is HEALTHY from `start`; the candidate exports from its first weight change until
    `candidate_until` (default: `end`), at its share of `total` unless `candidate_rps` says
    otherwise, with HEALTHY readings overridden by `candidate_readings`.
    """
    share = steps(0, {when: w / 100 for when, w in weights.items()})
    readings = {**copy.deepcopy(HEALTHY), **candidate_readings}
    return [
        Traffic(model, stable, start, end, rps=lambda t: total * (1 - share(t)), **copy.deepcopy(HEALTHY)),
        Traffic(model, candidate, min(weights), candidate_until or end,
                rps=candidate_rps if candidate_rps is not None else (lambda t: total * share(t)), **readings),
    ]


# --- the CLI ------------------------------------------------------------------------------------


@dataclass
class Run:
    """One CLI call: exit code, stdout, stderr."""

    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Step:
    """What one pass decided and committed."""

    decisions: list[dict[str, Any]]
    commits: list[Logged]
    run: Run

    @property
    def decision(self) -> dict[str, Any]:
        """The only decision of the pass (most scenarios have one rollout in flight)."""
        assert len(self.decisions) == 1, self.decisions
        return self.decisions[0]

    @property
    def commit(self) -> Logged:
        assert len(self.commits) == 1, self.commits
        return self.commits[0]

    @property
    def actions(self) -> list[tuple[str, str]]:
        return [(d["model"], d["action"]) for d in self.decisions]


@dataclass(frozen=True)
class Logged:
    """One commit as `git log` shows it: subject, full message, trailers (key -> values), author."""

    sha: str
    subject: str
    message: str
    trailers: dict[str, list[str]]
    author: str
    date: str

    def trailer(self, key: str) -> str:
        values = self.trailers.get(key, [])
        assert len(values) == 1, f"{key}: {values} in {self.subject!r}"
        return values[0]


@dataclass
class World:
    root: Path
    monkeypatch: pytest.MonkeyPatch
    prometheus_url: str | None = None
    initial_comments: list[str] = field(default_factory=list)

    # --- building ---

    @classmethod
    def create(cls, path: Path, monkeypatch: pytest.MonkeyPatch, *,
               releases: dict[tuple[str, str], Callable[[Any], None]] | None = None,
               environment: Callable[[Any], None] | None = None) -> World:
        """The example repository in git, nothing in flight in staging, 1.3.0 on FAST_CANARY.

        `releases` maps (model, version) to an edit of that release file; `environment` edits
        staging.yaml; both run before the initial commit. Staging's chat-assistant gets comments
        of its owner's (above `stable`, above `pool`, after `replicas`) that every pass must keep.
        """
        hermetic_git(monkeypatch, path)
        root = copy_example(path / "repo")

        def quiet_staging(doc: Any) -> None:
            for model in (CHAT, CODE):
                for key in ("candidate", "stage", "stage_started_at"):
                    doc["models"][model].pop(key, None)
            chat = doc["models"][CHAT]  # the file owner's comments around the pointers the reconciler edits
            chat.yaml_set_comment_before_after_key("stable", before=OWNER_COMMENT, indent=4)
            chat.yaml_set_comment_before_after_key("pool", before=POOL_COMMENT, indent=4)
            chat.yaml_add_eol_comment(REPLICAS_COMMENT, "replicas")

        edit_yaml(root / STAGING, quiet_staging)
        if environment is not None:
            edit_yaml(root / STAGING, environment)

        def fast(doc: Any) -> None:
            doc["rollout"] = copy.deepcopy(FAST_CANARY)

        for path_ in sorted((root / "releases").rglob("*.yaml")):  # no notification leaves the machine
            edit_yaml(path_, _no_internet_notify)
        edit_yaml(root / "releases" / CHAT / "1.3.0.yaml", fast)
        for (model, version), change in (releases or {}).items():
            edit_yaml(root / "releases" / model / f"{version}.yaml", change)
        git(root, "init", "-q", "-b", "main")
        git(root, "add", "releases", "environments")
        git(root, "commit", "-q", "-m", "Example repository, nothing in flight in staging", when=T0 - timedelta(days=1))
        world = cls(root, monkeypatch)
        world.initial_comments = comments(world.env_text())
        return world

    def clone(self, path: Path, remote: Path) -> World:
        """Another checkout of `remote` (a second reconciler), querying the same Prometheus."""
        git(path.parent, "clone", "-q", str(remote), str(path))
        other = World(path, self.monkeypatch, self.prometheus_url)
        other.initial_comments = self.initial_comments
        return other

    def serve(self, prometheus: Callable[[str], Any], traffic: list[Traffic]) -> Any:
        """Backfill the whole history, start Prometheus on it; passes query it from now on."""
        server = prometheus(openmetrics(traffic))
        self.prometheus_url = server.url
        return server

    # --- acting ---

    def cli(self, *args: str, when: datetime | None = None) -> Run:
        """`reconciler ARGS` in-process, in the repository, with git dates set to `when`."""
        if when is not None:
            self.monkeypatch.setenv("GIT_AUTHOR_DATE", z(when))
            self.monkeypatch.setenv("GIT_COMMITTER_DATE", z(when))
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
        return Run(code, out.getvalue(), err.getvalue())

    def reconcile(self, when: datetime, *extra: str, prometheus: str | None = None) -> Run:
        url = prometheus or self.prometheus_url
        assert url is not None, "serve() the history first"
        return self.cli("reconcile", str(self.root), "--at", z(when), "--prometheus", url, "--format", "json",
                        *extra, when=when)

    def pass_at(self, when: datetime, *extra: str, prometheus: str | None = None, code: int = 0) -> Step:
        """One reconcile pass at `when`, checked against what every pass promises:

        exit `code` (3: Prometheus could not be read for a rollout in flight); one commit per
        decision that changes something (wait and hold commit nothing), in the decisions' order, each carrying the decision's action, environment, model,
        version and instant as trailers; nothing left uncommitted; the file's comments intact.
        """
        before = self.head()
        run = self.reconcile(when, *extra, prometheus=prometheus)
        assert run.code == code, run.err
        decisions = run.json["decisions"]
        commits = self.log(since=before)
        committing = [d for d in decisions if d["action"] not in ("wait", "hold")]
        assert [c.sha for c in commits] == [d["commit"] for d in committing], (decisions, commits)
        for decision, commit in zip(committing, commits):
            assert commit.trailer("Sluice-Action") == decision["action"]
            assert commit.trailer("Sluice-Environment") == decision["environment"]
            assert commit.trailer("Sluice-Model") == decision["model"]
            assert commit.trailer("Sluice-Version") == decision["candidate"]
            assert commit.trailer("Sluice-At") == z(when)
            assert commit.author == "Sluice reconciler <reconciler@sluice.invalid>"
        assert all("commit" not in d for d in decisions if d not in committing)
        assert self.clean(), git(self.root, "status", "--porcelain")
        self.assert_comments_survive()
        return Step(decisions, commits, run)

    def start(self, model: str, version: str, when: datetime, environment: str = "staging") -> Run:
        """`reconciler start` at `when` (comments checked when it committed)."""
        run = self.cli("start", model, version, str(self.root), "--environment", environment, "--at", z(when),
                       when=when)
        if run.code == 0:
            self.assert_comments_survive()
        return run

    def rollback(self, model: str, reason: str, when: datetime, environment: str = "staging") -> Run:
        """`reconciler rollback --reason` at `when` (comments checked when it committed)."""
        run = self.cli("rollback", model, str(self.root), "--environment", environment, "--reason", reason,
                       "--at", z(when), when=when)
        if run.code == 0:
            self.assert_comments_survive()
        return run

    # --- reading ---

    def env_text(self, environment: str = "staging") -> str:
        return (self.root / "environments" / f"{environment}.yaml").read_text(encoding="utf-8")

    def pointers(self, model: str = CHAT, environment: str = "staging") -> dict[str, str]:
        """The model's pointers as the file says them, every value as text: {"stage": "1", ...}."""
        data = load_yaml(self.root / "environments" / f"{environment}.yaml")["models"][model]
        return {key: (z(value) if isinstance(value, datetime) else str(value)) for key, value in data.items()
                if key not in ("pool", "replicas")}

    def head(self) -> str:
        return git(self.root, "rev-parse", "HEAD").strip()

    def log(self, since: str | None = None) -> list[Logged]:
        """Commits after `since` (default: the initial commit), oldest first."""
        base = since or git(self.root, "rev-list", "--max-parents=0", "HEAD").strip()
        return read_log(self.root, f"{base}..HEAD")

    def clean(self) -> bool:
        return git(self.root, "status", "--porcelain", "--untracked-files=all") == ""

    def assert_comments_survive(self) -> None:
        """Every comment of the initial staging.yaml is still there, in the same order."""
        now = comments(self.env_text())
        it = iter(now)
        missing = [c for c in self.initial_comments if c not in it]
        assert not missing, f"comments lost from {STAGING}: {missing}\n{self.env_text()}"


# --- git ----------------------------------------------------------------------------------------


def hermetic_git(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """No user or system git config reaches the test (or the reconciler it runs)."""
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("HOME", str(home))
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "GIT_DIR",
                 "GIT_WORK_TREE"):
        monkeypatch.delenv(name, raising=False)


def git(root: Path, *args: str, when: datetime | None = None, check: bool = True) -> str:
    """git as a person runs it: fixed identity, no signing, no hooks."""
    env = dict(os.environ)
    if when is not None:
        env |= {"GIT_AUTHOR_DATE": z(when), "GIT_COMMITTER_DATE": z(when)}
    done = subprocess.run(
        ["git", "-c", "user.name=On-call Engineer", "-c", "user.email=oncall@acme.example", "-c",
         "commit.gpgsign=false", "-c", "core.hooksPath=/dev/null", *args],
        cwd=root, env=env, capture_output=True, text=True, timeout=60,
    )
    if check:
        assert done.returncode == 0, f"git {' '.join(args)} failed:\n{done.stdout}{done.stderr}"
    return done.stdout


_RS, _US = "\x1e", "\x1f"


def read_log(root: Path, revisions: str) -> list[Logged]:
    """`git log` of `revisions`, oldest first, with trailers parsed by git itself."""
    fmt = _US.join(["%H", "%s", "%B", "%(trailers:only,unfold)", "%an <%ae>", "%aI"]) + _RS
    text = git(root, "log", "--reverse", f"--format={fmt}", revisions)
    commits = []
    for record in text.split(_RS):
        if not record.strip():
            continue
        sha, subject, message, trailer_text, author, date = record.lstrip("\n").split(_US)
        trailers: dict[str, list[str]] = {}
        for line in trailer_text.splitlines():
            key, _, value = line.partition(": ")
            if key:
                trailers.setdefault(key, []).append(value)
        commits.append(Logged(sha, subject, message, trailers, author, date))
    return commits


# --- files --------------------------------------------------------------------------------------


def comments(text: str) -> list[str]:
    """Every comment in a YAML text (whole-line and end-of-line), without surrounding blanks."""
    found = []
    for line in text.splitlines():
        match = re.search(r"(?:^|\s)(#.*)$", line)
        if match:
            found.append(match.group(1).strip())
    return found


def edit_yaml(path: Path, change: Callable[[Any], None]) -> None:
    """Like tests.conftest.mutate_yaml, in the example files' own style (sequences indented under
    their key), so the only differences a scenario shows are the ones it made."""
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    data = yaml.load(path.read_text(encoding="utf-8"))
    change(data)
    buffer = io.StringIO()
    yaml.dump(data, buffer)
    path.write_text(buffer.getvalue(), encoding="utf-8")


def _no_internet_notify(doc: Any) -> None:
    rollout = doc.get("rollout")
    if rollout is not None and "notify" in rollout:
        rollout["notify"] = []


def set_notify(targets: Sequence[dict[str, str]]) -> Callable[[Any], None]:
    def change(doc: Any) -> None:
        doc["rollout"]["notify"] = list(targets)
    return change
