"""Play the scenario: a temporary git repository made from the example, the commands in order.

Each step prints the command a person would type (`$ reconciler ...`, run from the temporary
repository) and then runs the same code in this process: `reconciler start` through the CLI's
own `main`, each reconcile pass through `run_pass` (what `reconciler reconcile` calls; the CLI
cannot take a replaying client), the report through `make_report` (what `reconciler report`
calls). Git runs hermetically (no user or system config: the reconciler's commits carry its bot
identity) and each command's commits are dated at its `--at`, as a cron job running on time
would date them.

The example's releases notify a Slack channel and an on-call webhook; the copy notifies nobody,
so a demo rollback posts nothing to the internet.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Iterator

from ruamel.yaml import YAML

from ..adapters.prometheus import PrometheusClient
from ..adapters.rollout_pass import PassReport, run_pass
from ..adapters.rollout_report import make_report
from ..cli.main import main
from ..cli.reconcile import report_text
from ..core.environment import Environment
from ..core.rollout_report import RolloutReport, summary_lines, warnings
from ..core.types import utc_text
from . import recording, scenario
from .prometheus import PrometheusServer, openmetrics, start_prometheus

#: The checkout holding this package: the example repository the demos copy, when run from a clone.
CHECKOUT = Path(__file__).resolve().parents[2]
RECORDED = Path(__file__).with_name("recorded.json")
EXAMPLE_PARTS = ("releases", "environments", "infra", "policies")
ABOUT_RECORDING = ("Prometheus answers to the demo's queries (reconciler/demo/scenario.py), recorded from Debian's "
                   "prometheus 2.42 serving the scenario's synthetic history; re-record with "
                   "`python -m reconciler.demo --record reconciler/demo/recorded.json`")
_HERMETIC_GIT = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_DIR": None, "GIT_WORK_TREE": None,
                 "GIT_AUTHOR_NAME": None, "GIT_AUTHOR_EMAIL": None, "GIT_COMMITTER_NAME": None,
                 "GIT_COMMITTER_EMAIL": None, "GIT_AUTHOR_DATE": None, "GIT_COMMITTER_DATE": None}


class DemoError(Exception):
    """The demo could not be played as built (the message says what differed)."""


class DemoUsageError(DemoError):
    """The demo was asked for something it cannot do (an --out that is not empty, no example)."""


@dataclass
class Demo:
    """What a play left behind."""

    out: Path
    root: Path  # the temporary repository
    report_path: Path
    mode: str  # "prometheus" or "recorded"
    passes: list[PassReport] = field(default_factory=list)
    report: RolloutReport | None = None
    fallback_reason: str | None = None


def example_source(given: Path | None) -> Path:
    """`--from PATH`, else the checkout holding this package when it has the example, else the current directory."""
    return given or (CHECKOUT if (CHECKOUT / "releases").is_dir() else Path.cwd())


def empty_out(out: Path) -> Path:
    """`out` resolved; DemoUsageError unless it is a new or empty directory."""
    out = Path(out).resolve()
    if out.exists() and any(out.iterdir()):
        raise DemoUsageError(f"{out} is not empty: give --out a new or empty directory")
    return out


def play(source: Path, out: Path, *, recorded: bool = False, record: Path | None = None,
         echo: Callable[[str], None] = print) -> Demo:
    """Play the rollout in `out` (a new or empty directory): `out/repo` and `out/report.html`.

    `recorded`: replay recorded Prometheus answers even if Prometheus runs here. `record`: write
    the answers the real Prometheus gave to this file (needs Prometheus).
    """
    out = empty_out(out)
    demo = Demo(out, out / "repo", out / "report.html", "recorded" if recorded else "prometheus")
    with hermetic_git():
        make_repository(Path(source), demo.root)
        server = None
        if not recorded:
            try:
                server = _serve(out / "prometheus")
            except RuntimeError as err:
                demo.mode, demo.fallback_reason = "recorded", str(err)
        if record is not None and server is None:
            raise DemoUsageError(f"--record needs a running Prometheus: {demo.fallback_reason or 'not with --recorded'}")
        try:
            _play(demo, server, record, echo)
        finally:
            if server is not None:
                server.stop()
                shutil.rmtree(server.directory, ignore_errors=True)
    return demo


def _play(demo: Demo, server: PrometheusServer | None, record: Path | None, echo: Callable[[str], None]) -> None:
    s = scenario
    if server is not None:
        url = server.url
        client: PrometheusClient = recording.RecordingClient(url, 10.0) if record else PrometheusClient(url, 10.0)
        first, last = s.HISTORY
        echo(f"Prometheus serves {_hours(last - first)} of synthetic history of {s.MODEL} {s.STABLE} and "
             f"{s.CANDIDATE} at {url} (Debian's prometheus, backfilled with promtool).")
        flag = f" --prometheus {url}"
    else:
        url = None
        why = demo.fallback_reason or "--recorded was given"
        echo(f"Prometheus is not available here ({why}).")
        echo(f"Playing the same rollout from recorded metric values instead: {RECORDED.name}, the answers a real "
             "Prometheus gave to the same queries on the same history, so the passes reach the same decisions.")
        client = recording.ReplayClient(recording.load(RECORDED), f"recorded answers ({RECORDED.name})")
        flag = ""
    source = None if server is not None else f"a real Prometheus' answers, recorded in reconciler/demo/{RECORDED.name}"

    def factory(environment: Environment, wanted: str | None) -> PrometheusClient:
        return client

    echo(f"$ cd {demo.root}")
    run_cli(echo, "start", s.MODEL, s.CANDIDATE, "-e", s.ENVIRONMENT, "--at", utc_text(s.START),
             root=demo.root, when=s.START)
    for step in s.PASSES:
        echo(f"$ reconciler reconcile -e {s.ENVIRONMENT} --at {utc_text(step.at)}{flag}")
        with git_dates(step.at):
            report = run_pass(demo.root, environments=[s.ENVIRONMENT], prometheus_url=url, at=step.at,
                              client_factory=factory)
        echo(report_text(report, dry_run=False))
        actions = [str(d.action) for d in report.decisions]
        if actions != [step.expect]:
            raise DemoError(f"the pass at {utc_text(step.at)} decided {actions or 'nothing'}, but the scenario was "
                            f"built for [{step.expect!r}]: {report_text(report, dry_run=False)}")
        demo.passes.append(report)

    echo(f"$ reconciler report {s.MODEL} -e {s.ENVIRONMENT}{flag} --out {demo.report_path}")
    demo.report = make_report(demo.root, s.ENVIRONMENT, s.MODEL, demo.report_path, now=s.PASSES[-1].at,
                              prometheus_url=url, client_factory=factory, source=source)
    for warning in warnings(demo.report):
        echo(f"warning: {warning}")
    echo(f"wrote {demo.report_path}")
    echo("\n".join(summary_lines(demo.report)))
    if record is not None and isinstance(client, recording.RecordingClient):
        recording.save(record, client.answers, ABOUT_RECORDING)
        echo(f"recorded {len(client.answers)} Prometheus answers in {record}")


def pass_table(demo: Demo) -> list[str]:
    """The passes and their decisions, one line each (with the commit and incident they made)."""
    lines = []
    for report in demo.passes:
        applied = {id(a.decision): a for a in report.applied}
        for decision in report.decisions:
            stage = "" if decision.stage is None else f"stage {decision.stage}"
            if decision.next_stage is not None and decision.next_stage != decision.stage:
                stage += f" -> {decision.next_stage}"
            weight = "" if decision.weight is None else f" ({decision.weight}%)"
            if decision.previous_weight is not None and decision.previous_weight != decision.weight:
                weight = f" ({decision.previous_weight}% -> {decision.weight}%)"
            made = applied.get(id(decision))
            done = ""
            if made is not None and made.commit:
                done = f"  commit {made.commit[:12]}" + (f", incident {made.incident}" if made.incident else "")
            lines.append(f"  {utc_text(report.at)}  {decision.action:<8} {stage + weight:<24} {decision.reasons[0]}"
                         f"{done}")
    return lines


# --- the repository -------------------------------------------------------------------------------

def make_repository(source: Path, root: Path, prepare: Callable[[Path], None] | None = None) -> None:
    """The example's files in a fresh git repository, one commit a day before the rollout;
    `prepare(root)` may edit the files before that commit (the shadow act does)."""
    missing = [part for part in EXAMPLE_PARTS[:2] if not (source / part).is_dir()]
    if missing:
        raise DemoUsageError(f"{source} has no {' or '.join(p + '/' for p in missing)}: run the demo from the Sluice "
                        "repository (or give --from PATH)")
    root.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in EXAMPLE_PARTS:
        if (source / part).is_dir():
            shutil.copytree(source / part, root / part, ignore=ignore)
    for stack in sorted(source.glob("Pulumi*.yaml")):
        shutil.copy2(stack, root / stack.name)
    _notify_nobody(root)
    if prepare is not None:
        prepare(root)
    when = {"GIT_AUTHOR_DATE": utc_text(scenario.START - timedelta(days=1))}
    when["GIT_COMMITTER_DATE"] = when["GIT_AUTHOR_DATE"]
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "--all")
    _git(root, "commit", "-q", "-m", "The example repository", env=when)


def _notify_nobody(root: Path) -> None:
    def nobody(data: Any) -> bool:
        rollout = data.get("rollout") if isinstance(data, dict) else None
        if isinstance(rollout, dict) and rollout.get("notify"):
            rollout["notify"] = []
            return True
        return False

    for path in sorted((root / "releases").rglob("*.yaml")):
        edit_yaml(path, nobody)


def edit_yaml(path: Path, change: Callable[[Any], bool | None]) -> None:
    """Edit a YAML file in place, comments kept, in the example's own style; a `change` that
    returns False leaves the file as it was, byte for byte."""
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    data: Any = yaml.load(path.read_text(encoding="utf-8"))
    if change(data) is False:
        return
    buffer = io.StringIO()
    yaml.dump(data, buffer)
    path.write_text(buffer.getvalue(), encoding="utf-8")


def _git(root: Path, *args: str, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(["git", "-c", "user.name=Sluice demo", "-c", "user.email=demo@sluice.invalid",
                           "-c", "commit.gpgsign=false", *args], cwd=root, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise DemoError(f"git {' '.join(args)} failed: {done.stderr.strip()}")


def _serve(directory: Path) -> PrometheusServer:
    return start_prometheus(directory, openmetrics(scenario.history()))


def run_cli(echo: Callable[[str], None], *args: str, root: Path, when: Any) -> None:
    """Print `$ reconciler ARGS` and run it in-process on `root`, its commits dated `when`."""
    echo("$ reconciler " + " ".join(args))
    with git_dates(when):
        code = main([args[0], *args[1:], str(root)])
    if code != 0:
        raise DemoError(f"reconciler {args[0]} exited {code}")


def _hours(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes % 60 else f"{minutes // 60}h"


@contextmanager
def hermetic_git() -> Iterator[None]:
    """No user or system git config (the reconciler's commits carry its bot identity)."""
    with _environment(_HERMETIC_GIT):
        yield


@contextmanager
def git_dates(when: Any) -> Iterator[None]:
    stamp = utc_text(when)
    with _environment({"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp}):
        yield


@contextmanager
def _environment(changes: dict[str, str | None]) -> Iterator[None]:
    """Set (or, for None, unset) environment variables for the block, then restore them."""
    saved = {key: os.environ.get(key) for key in changes}
    try:
        _set_environment(changes)
        yield
    finally:
        _set_environment(saved)


def _set_environment(values: dict[str, str | None]) -> None:
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
