"""`python -m reconciler.demo.shadow_act [--out DIR] [--candidate KIND]`: the online evaluator's
series deciding a shadow stage, end to end, without a GPU or network.

The main job's second act (scripts/example.sh runs it after the canary): in a temporary git
repository made from the example, chat-assistant 1.3.0 rolls out as a shadow (SHADOW_PLAN in
shadow.py: stage 0 mirrors all traffic to it, gated on the evaluator's comparison). Scripted
stable and candidate servers, a scripted classifier and judge, the real evaluator and a real
Prometheus scraping it run on loopback (shadow.py's Rig); sampled requests are mirrored to the
evaluator, which compares the two versions' answers; then the real reconcile pass reads the
evaluator's series from Prometheus and decides. Each step prints the command a person would type
and what happened. Where Prometheus is not installed, the act says so and prints the
evaluator's own counts instead.

Exit 0 when the stage was decided as the candidate's kind expects (or, without Prometheus, the
counts were shown), 1 when a pass decided otherwise, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Callable

from ..adapters.rollout_pass import PassReport, run_pass
from ..cli import exit_codes
from ..cli.reconcile import report_text
from ..core.types import utc_text
from .player import (
    DemoError, DemoUsageError, edit_yaml, empty_out, example_source, git_dates, hermetic_git, make_repository, run_cli,
)
from .shadow import (
    APP, CANDIDATE, CANDIDATES, MESH_LEAD, ROUNDS, SHADOW_PLAN, STABLE, STABLE_ANSWERS, STAGE_AGE, Rig,
    comparison_table, ratio, settled_now, start_rig, use_shadow_plan,
)

ENVIRONMENT = "staging"
#: what a pass must decide for each kind of candidate
EXPECTED = {"diverging": "rollback", "unsafe": "rollback", "drifting": "hold", "faithful": "advance"}


@dataclass
class ShadowAct:
    root: Path  # the temporary repository
    mode: str  # "prometheus" or "counts only"
    counts: dict[tuple[str, str], float]
    report: PassReport | None = None
    fallback_reason: str | None = None


def play_shadow(source: Path, out: Path, *, candidate: str = "diverging",
                echo: Callable[[str], None] = print) -> ShadowAct:
    """Play the shadow stage of a `candidate` (a CANDIDATES key) in `out` (new or empty)."""
    out = empty_out(out)
    root = out / "repo"
    with hermetic_git():
        make_repository(Path(source), root, prepare=_shadow_repository)
        rig = start_rig(CANDIDATES[candidate])
        try:
            return _play(rig, root, out, candidate, echo)
        finally:
            rig.stop()


def _play(rig: Rig, root: Path, out: Path, candidate: str, echo: Callable[[str], None]) -> ShadowAct:
    models = rig.models
    echo(f"Scripted servers on loopback stand in for vLLM (test doubles with scripted answers, no model): "
         f"stable {STABLE} at {models['stable'].url}, a {candidate} candidate {CANDIDATE} at "
         f"{models['candidate'].url}, a Llama-Guard-style classifier at {models['classifier'].url} and a judge at "
         f"{models['judge'].url}.")
    config = out / "evaluator.json"
    config.write_text(rig.config.model_dump_json(indent=1), encoding="utf-8")
    echo(f"$ sluice-evaluator --config {config} --host 127.0.0.1 --port 0")
    echo(f"(the same service, on a thread of this process) listening at {rig.evaluator.url}")
    now = datetime.now(UTC).replace(microsecond=0)
    try:
        server = rig.serve_prometheus(out / "prometheus", now)
    except RuntimeError as err:
        server, why = None, str(err)
    else:
        why = None
        echo(f"Prometheus at {server.url} scrapes the evaluator's /metrics every second (and holds "
             f"{_minutes(STAGE_AGE + MESH_LEAD)} minutes of Istio's series up to now: a synthetic history, "
             "backfilled).")
    began = now - STAGE_AGE
    echo(f"$ cd {root}")
    run_cli(echo, "start", APP, CANDIDATE, "-e", ENVIRONMENT, "--at", utc_text(began), root=root, when=began)
    echo(f"(the shadow stage began {_minutes(STAGE_AGE)} minutes ago: stage 0 mirrors 100% of traffic to {CANDIDATE}; "
         f"gates {_bounds(SHADOW_PLAN['stages'][0]['gates'])}; triggers {_bounds(SHADOW_PLAN['rollback_triggers'])})")
    if server is not None:
        rig.wait_scraping()
    fed = rig.feed()
    echo(f"Istio's mirror, played here: {fed} sampled requests ({len(STABLE_ANSWERS)} support prompts, {ROUNDS} times "
         f"each) POSTed to {rig.evaluator.url}/v1/chat/completions, each admitted (202); the evaluator sent each to "
         "both versions, had the classifier score both answers and the judge compare them.")
    counts = rig.counts()
    echo("What the evaluator compared (its /metrics" + (", as Prometheus scraped it):" if server else "):"))
    for line in comparison_table(counts):
        echo(line)
    if server is None:
        divergence = ratio(counts, "sluice_shadow_divergent_total", "sluice_shadow_comparisons_total")
        echo(f"Prometheus is not available here ({why}).")
        echo(f"So no pass reads these series; from the evaluator's own counts, shadow_divergence_rate is "
             f"{divergence:.4g} (the release's gate: max 0.2; its trigger: max 0.3).")
        return ShadowAct(root, "counts only", counts, fallback_reason=why)
    at = settled_now()
    echo(f"$ reconciler reconcile -e {ENVIRONMENT} --at {utc_text(at)} --prometheus {server.url}")
    with git_dates(at):
        report = run_pass(root, environments=[ENVIRONMENT], prometheus_url=server.url, at=at)
    echo(report_text(report, dry_run=False))
    actions = [str(d.action) for d in report.decisions]
    if actions != [EXPECTED[candidate]]:
        raise DemoError(f"the pass decided {actions or 'nothing'} for a {candidate} candidate, but the act was built "
                        f"for [{EXPECTED[candidate]!r}]: {report_text(report, dry_run=False)}")
    return ShadowAct(root, "prometheus", counts, report)


def _shadow_repository(root: Path) -> None:
    """chat-assistant 1.3.0 rolls out as a shadow; nothing in flight in the environment yet."""
    edit_yaml(root / "releases" / APP / f"{CANDIDATE}.yaml", use_shadow_plan)

    def nothing_in_flight(environment: Any) -> None:
        for pointers in environment["models"].values():
            for key in ("candidate", "stage", "stage_started_at"):
                pointers.pop(key, None)

    edit_yaml(root / "environments" / f"{ENVIRONMENT}.yaml", nothing_in_flight)


def _bounds(checks: list[dict[str, Any]]) -> str:
    """"shadow_divergence_rate max 0.2, refusal_rate max_increase_over_stable 0.05"."""
    return ", ".join(" ".join([c["metric"], *(f"{k} {v}" for k, v in c.items() if k != "metric")]) for c in checks)


def _minutes(span: timedelta) -> int:
    return int(span.total_seconds() // 60)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reconciler.demo.shadow_act",
        description="The online evaluator deciding a shadow stage: scripted versions, classifier and judge, the real "
                    "evaluator and Prometheus on loopback, and a reconcile pass reading the evaluator's series.")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="a new or empty directory for the repository (DIR/repo); default: a new temporary one")
    parser.add_argument("--candidate", choices=sorted(CANDIDATES), default="diverging",
                        help="how candidate 1.3.0 answers (default: diverging, rolled back)")
    parser.add_argument("--from", dest="source", type=Path, metavar="PATH",
                        help="the example repository to copy (default: the checkout holding this package)")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="sluice-shadow-"))
    started = time.monotonic()
    try:
        act = play_shadow(example_source(args.source), out, candidate=args.candidate)
    except DemoError as err:
        print(f"python -m reconciler.demo.shadow_act: {err}", file=sys.stderr)
        return exit_codes.USAGE if isinstance(err, DemoUsageError) else exit_codes.FINDINGS
    print(f"Played in {time.monotonic() - started:.1f} s ({act.mode}); the repository: {act.root}")
    return exit_codes.OK


if __name__ == "__main__":
    sys.exit(main())
