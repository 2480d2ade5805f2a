"""Pre-deployment gates (pure: evaluations in, results out) and the traffic / GPU-demand math."""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest

from reconciler.adapters.yaml_source import parse_yaml
from reconciler.core.environment import Environment, ModelDeployment, PreDeploymentGates
from reconciler.core.predeployment import GateResult, Phase, evaluate_predeployment
from reconciler.core.release import Evaluation, Release, Rollout, Serving
from reconciler.core.repository import Repository, SourcedRelease, release_path
from reconciler.core.traffic import candidate_stage, live_releases, pool_demand, traffic_split
from tests.conftest import ROOT

PASS, FAIL, INCONCLUSIVE = Phase.PASS, Phase.FAIL, Phase.INCONCLUSIVE


def evaluation(**overrides: Any) -> Evaluation:
    """A candidate that passes every default gate against `stable()`, with `overrides` applied."""
    values: dict[str, Any] = {"toxicity": 0.01, "win_rate_vs_current": 0.6, "latency_p99_ms": 1000.0,
                              "adversarial_pass_rate": 1.0}
    values.update(overrides)
    return Evaluation(**values)


def stable(**overrides: Any) -> Evaluation:
    values: dict[str, Any] = {"toxicity": 0.01, "win_rate_vs_current": None, "latency_p99_ms": 1000.0,
                              "adversarial_pass_rate": 1.0}
    values.update(overrides)
    return Evaluation(**values)


def by_gate(results: list[GateResult]) -> dict[str, GateResult]:
    return {r.gate: r for r in results}


# --------------------------------------------------------------------------- which gates run


@pytest.mark.parametrize(
    ("candidate", "with_stable", "gates"),
    [
        (evaluation(), True, ["toxicity", "adversarial-suite", "win-rate", "latency-p99"]),
        (evaluation(), False, ["toxicity", "adversarial-suite"]),
        (evaluation(win_rate_vs_current=None), False, ["toxicity", "adversarial-suite"]),
        (evaluation(latency_p99_ms=99_999, win_rate_vs_current=0.1), False, ["toxicity", "adversarial-suite"]),
    ],
    ids=[
        "with a stable, all four gates run",
        "without a stable, win rate and latency are not compared",
        "a first release without a win rate is not penalised",
        "without a stable, a slow candidate with a low win rate still passes what runs",
    ],
)
def test_which_gates_run(candidate: Evaluation, with_stable: bool, gates: list[str]) -> None:
    results = evaluate_predeployment(candidate, stable() if with_stable else None, PreDeploymentGates())
    assert [r.gate for r in results] == gates
    assert all(r.phase is PASS for r in results)


# --------------------------------------------------------------------------- boundaries


BOUNDARIES = [
    # gate, candidate, stable (None: no stable), limits, phase, blocking, message
    ("toxicity exactly at the 0.05 limit fails and blocks",
     "toxicity", evaluation(toxicity=0.05), stable(), PreDeploymentGates(), FAIL, True, "toxicity 0.05 >= max 0.05"),
    ("toxicity just under the limit (0.0499) passes",
     "toxicity", evaluation(toxicity=0.0499), stable(), PreDeploymentGates(), PASS, True, "toxicity 0.0499 < max 0.05"),
    ("toxicity 0 passes",
     "toxicity", evaluation(toxicity=0.0), None, PreDeploymentGates(), PASS, True, "toxicity 0 < max 0.05"),
    ("toxicity is judged without a stable too",
     "toxicity", evaluation(toxicity=0.2), None, PreDeploymentGates(), FAIL, True, "toxicity 0.2 >= max 0.05"),
    ("the environment's toxicity limit is the one applied",
     "toxicity", evaluation(toxicity=0.011), stable(), PreDeploymentGates(max_toxicity=0.01), FAIL, True,
     "toxicity 0.011 >= max 0.01"),
    ("a win rate of exactly 50% fails and blocks",
     "win-rate", evaluation(win_rate_vs_current=0.5), stable(), PreDeploymentGates(), FAIL, True,
     "win rate vs current 50% <= min 50%"),
    ("a win rate just over 50% (0.5001) passes",
     "win-rate", evaluation(win_rate_vs_current=0.5001), stable(), PreDeploymentGates(), PASS, True,
     "win rate vs current"),
    ("a win rate under 50% fails",
     "win-rate", evaluation(win_rate_vs_current=0.42), stable(), PreDeploymentGates(), FAIL, True,
     "win rate vs current 42% <= min 50%"),
    ("the environment's win-rate minimum is the one applied",
     "win-rate", evaluation(win_rate_vs_current=0.55), stable(), PreDeploymentGates(min_win_rate=0.6), FAIL, True,
     "win rate vs current 55% <= min 60%"),
    ("an adversarial pass rate of 0.999 fails and blocks",
     "adversarial-suite", evaluation(adversarial_pass_rate=0.999), stable(), PreDeploymentGates(), FAIL, True,
     "adversarial-suite pass rate 99.9% < required 100%"),
    ("a full adversarial pass passes",
     "adversarial-suite", evaluation(adversarial_pass_rate=1.0), stable(), PreDeploymentGates(), PASS, True,
     "adversarial-suite pass rate 100% >= required 100%"),
    ("an adversarial rate exactly at a lowered requirement passes (inclusive)",
     "adversarial-suite", evaluation(adversarial_pass_rate=0.95), None,
     PreDeploymentGates(min_adversarial_pass_rate=0.95), PASS, True, ">= required 95%"),
    ("latency exactly 20% over stable fails, as a warning only",
     "latency-p99", evaluation(latency_p99_ms=1200), stable(latency_p99_ms=1000), PreDeploymentGates(), FAIL, False,
     "latency p99 1200 ms >= stable 1000 ms + 20% = 1200 ms"),
    ("latency just under stable + 20% passes",
     "latency-p99", evaluation(latency_p99_ms=1199.9), stable(latency_p99_ms=1000), PreDeploymentGates(), PASS,
     False, "latency p99 1199.9 ms < stable 1000 ms + 20% = 1200 ms"),
    ("a faster candidate passes the latency gate",
     "latency-p99", evaluation(latency_p99_ms=800), stable(latency_p99_ms=1000), PreDeploymentGates(), PASS, False,
     "latency p99 800 ms < stable"),
    ("with no allowed increase, equal latency fails",
     "latency-p99", evaluation(latency_p99_ms=1000), stable(latency_p99_ms=1000),
     PreDeploymentGates(max_latency_increase=0), FAIL, False, "latency p99 1000 ms >= stable 1000 ms + 0% = 1000 ms"),
    ("the environment's latency allowance is the one applied",
     "latency-p99", evaluation(latency_p99_ms=1499), stable(latency_p99_ms=1000),
     PreDeploymentGates(max_latency_increase=0.5), PASS, False, "+ 50% = 1500 ms"),
    ("latency exactly 20% over a stable of 1025.9 ms (1231.08 ms) fails too",
     "latency-p99", evaluation(latency_p99_ms=1231.08), stable(latency_p99_ms=1025.9), PreDeploymentGates(),
     FAIL, False, ">= stable 1025.9 ms + 20%"),
    ("latency exactly 20% over a stable of 10.3 ms (12.36 ms) fails too",
     "latency-p99", evaluation(latency_p99_ms=12.36), stable(latency_p99_ms=10.3), PreDeploymentGates(),
     FAIL, False, ">= stable 10.3 ms + 20%"),
]


@pytest.mark.parametrize(
    ("gate", "candidate", "stable_eval", "limits", "phase", "blocking", "message"),
    [pytest.param(*c[1:8], marks=c[8:]) for c in BOUNDARIES],
    ids=[c[0] for c in BOUNDARIES],
)
def test_gate_boundaries(gate: str, candidate: Evaluation, stable_eval: Evaluation | None,
                         limits: PreDeploymentGates, phase: Phase, blocking: bool, message: str) -> None:
    result = by_gate(evaluate_predeployment(candidate, stable_eval, limits))[gate]
    assert result.phase is phase
    assert result.blocking is blocking
    assert result.failed is (phase is not PASS)
    assert message in result.message
    assert bool(result.fix) is result.failed, "failures say how to fix them; passes carry no fix"


@pytest.mark.parametrize(
    ("gate", "field"),
    [("toxicity", "toxicity"), ("adversarial-suite", "adversarial_pass_rate"),
     ("win-rate", "win_rate_vs_current"), ("latency-p99", "latency_p99_ms")],
    ids=["the toxicity gate reads toxicity", "the adversarial gate reads adversarial_pass_rate",
         "the win-rate gate reads win_rate_vs_current", "the latency gate reads latency_p99_ms"],
)
def test_each_gate_names_the_field_it_reads(gate: str, field: str) -> None:
    assert by_gate(evaluate_predeployment(evaluation(), stable(), PreDeploymentGates()))[gate].field == field


def test_missing_win_rate_with_a_stable_is_inconclusive_and_blocks() -> None:
    result = by_gate(evaluate_predeployment(evaluation(win_rate_vs_current=None), stable(),
                                            PreDeploymentGates()))["win-rate"]
    assert result.phase is INCONCLUSIVE
    assert result.blocking is True
    assert result.failed is True
    assert result.field == "win_rate_vs_current"
    assert "missing" in result.message
    assert "pairwise" in result.fix


def test_the_stable_win_rate_is_irrelevant() -> None:
    """The candidate's own win rate is compared, never the stable's (which compared it with its parent)."""
    high = evaluate_predeployment(evaluation(win_rate_vs_current=0.6), stable(win_rate_vs_current=0.9),
                                  PreDeploymentGates())
    low = evaluate_predeployment(evaluation(win_rate_vs_current=0.6), stable(win_rate_vs_current=0.1),
                                 PreDeploymentGates())
    assert high == low
    assert by_gate(high)["win-rate"].phase is PASS


def test_several_failures_are_all_reported() -> None:
    results = evaluate_predeployment(
        evaluation(toxicity=0.3, adversarial_pass_rate=0.5, win_rate_vs_current=0.2, latency_p99_ms=5000),
        stable(), PreDeploymentGates())
    assert [(r.gate, r.phase, r.blocking) for r in results] == [
        ("toxicity", FAIL, True), ("adversarial-suite", FAIL, True), ("win-rate", FAIL, True),
        ("latency-p99", FAIL, False)]


def test_evaluation_is_pure() -> None:
    args = (evaluation(toxicity=0.07), stable(), PreDeploymentGates())
    assert evaluate_predeployment(*args) == evaluate_predeployment(*args)


def test_a_failing_adversarial_message_shows_the_real_rate() -> None:
    result = by_gate(evaluate_predeployment(evaluation(adversarial_pass_rate=0.9995), None,
                                            PreDeploymentGates()))["adversarial-suite"]
    assert result.phase is FAIL
    assert "100.0% <" not in result.message  # a failure must not claim the rate equals the requirement
    assert "99.95%" in result.message


# --------------------------------------------------------------------------- traffic split


@cache
def _base_release() -> Release:
    parsed = parse_yaml((ROOT / "releases/chat-assistant/1.3.0.yaml").read_bytes())
    return Release.model_validate(parsed.data)


def release(version: str, *, model: str = "chat-assistant", gpus: int = 4, gpu_type: str = "nvidia-a100-80gb",
            strategy: str = "canary") -> Release:
    base = _base_release()
    serving = Serving(image=base.bundle.serving.image, gpus=gpus, gpu_type=gpu_type)
    return base.model_copy(update={
        "model": model, "version": version,
        "bundle": base.bundle.model_copy(update={"serving": serving}),
        "rollout": Rollout(strategy=strategy),
    })


def deployment(**kwargs: Any) -> ModelDeployment:
    values: dict[str, Any] = {"stable": "1.2.0", "pool": "a100"}
    values.update(kwargs)
    return ModelDeployment(**values)


SPLITS = [
    ("a stable alone takes all traffic",
     deployment(), None, {"1.2.0": 100}, None, None),
    ("worked example: a 5% canary stage sends 95/5",
     deployment(candidate="1.3.0", stage=2), release("1.3.0"), {"1.2.0": 95, "1.3.0": 5}, None, 5),
    ("stage 0 deploys the candidate without traffic",
     deployment(candidate="1.3.0", stage=0), release("1.3.0"), {"1.2.0": 100, "1.3.0": 0}, None, 0),
    ("the last canary stage sends everything to the candidate",
     deployment(candidate="1.3.0", stage=5), release("1.3.0"), {"1.2.0": 0, "1.3.0": 100}, None, 100),
    ("a standby is live but serves nothing",
     deployment(candidate="1.3.0", standby="1.1.0", stage=1), release("1.3.0"),
     {"1.2.0": 99, "1.3.0": 1, "1.1.0": 0}, None, 1),
    ("a standby without a candidate leaves the stable at 100",
     deployment(standby="1.1.0"), None, {"1.2.0": 100, "1.1.0": 0}, None, None),
    ("a shadow stage mirrors to the candidate while the stable serves everyone",
     deployment(candidate="1.3.0", stage=0), release("1.3.0", strategy="shadow"),
     {"1.2.0": 100, "1.3.0": 0}, ("1.3.0", 100), 0),
    ("after the shadow stage the candidate serves its canary share and mirrors nothing",
     deployment(candidate="1.3.0", stage=1), release("1.3.0", strategy="shadow"),
     {"1.2.0": 99, "1.3.0": 1}, None, 1),
    ("blue-green switches all traffic at its second stage",
     deployment(candidate="1.3.0", stage=1), release("1.3.0", strategy="blue-green"),
     {"1.2.0": 0, "1.3.0": 100}, None, 100),
    ("a stage past the candidate's last keeps traffic on the stable",
     deployment(candidate="1.3.0", stage=9), release("1.3.0"), {"1.2.0": 100, "1.3.0": 0}, None, None),
    ("a candidate whose release did not load gets no traffic",
     deployment(candidate="1.3.0", stage=3), None, {"1.2.0": 100, "1.3.0": 0}, None, None),
]


@pytest.mark.parametrize(
    ("dep", "candidate", "weights", "mirror", "stage_weight"), [c[1:] for c in SPLITS], ids=[c[0] for c in SPLITS])
def test_traffic_split(dep: ModelDeployment, candidate: Release | None, weights: dict[str, int],
                       mirror: tuple[str, int] | None, stage_weight: int | None) -> None:
    split = traffic_split(dep, candidate)
    assert split.weights == weights
    assert sum(split.weights.values()) == 100
    assert list(split.weights) == dep.live_versions()
    assert split.mirror == mirror
    assert (split.stage.weight if split.stage else None) == stage_weight
    assert split.stage == candidate_stage(dep, candidate)


# --------------------------------------------------------------------------- pool demand


def environment(pools: list[dict[str, Any]], models: dict[str, ModelDeployment]) -> Environment:
    return Environment(
        cluster={"region": "us-east-1", "name": "test", "kubernetes_version": "1.33"},
        gpu_pools=pools,
        istio={"gateway": "istio-system/gw", "hosts": ["llm.example"]},
        metrics={"prometheus_url": "http://prometheus:9090"},
        models=models,
    )


def a100(max_nodes: int = 8, gpus_per_node: int = 8) -> dict[str, Any]:
    return {"name": "a100", "instance_type": "p4de.24xlarge", "gpu_type": "nvidia-a100-80gb",
            "gpus_per_node": gpus_per_node, "max_nodes": max_nodes}


A10G = {"name": "a10g", "instance_type": "g5.12xlarge", "gpu_type": "nvidia-a10g", "gpus_per_node": 4, "max_nodes": 2}


def repository(*releases: Release) -> Repository:
    return Repository(tuple(SourcedRelease(release_path(r.model, r.version), r) for r in releases))


THREE = {"stable": "1.2.0", "candidate": "1.3.0", "standby": "1.1.0", "stage": 1}

DEMANDS = [
    ("worked example: 2 replicas of 4 GPUs on 8-GPU nodes need 1 node per version, 3 for three versions",
     [a100()], {"chat-assistant": deployment(**THREE, replicas=2)},
     [release("1.1.0"), release("1.2.0"), release("1.3.0")],
     {"a100": (3, True)},
     ["chat-assistant stable 1.2.0 (2 x 4 GPUs)", "chat-assistant candidate 1.3.0 (2 x 4 GPUs)",
      "chat-assistant standby 1.1.0 (2 x 4 GPUs)"]),
    ("production's chat-assistant: 4 replicas of 4 GPUs need 2 nodes each for stable and standby",
     [a100()], {"chat-assistant": deployment(standby="1.1.0", replicas=4)},
     [release("1.1.0"), release("1.2.0")], {"a100": (4, True)}, None),
    ("3 replicas of 3 GPUs: two fit an 8-GPU node, so each version needs 2 nodes",
     [a100()], {"chat-assistant": deployment(candidate="1.3.0", stage=1, replicas=3)},
     [release("1.2.0", gpus=3), release("1.3.0", gpus=3)], {"a100": (4, True)}, None),
    ("a replica of 8 GPUs fills a node",
     [a100(max_nodes=2)], {"chat-assistant": deployment(**THREE)},
     [release("1.1.0", gpus=8), release("1.2.0", gpus=8), release("1.3.0", gpus=8)], {"a100": (3, False)}, None),
    ("demand exactly equal to max_nodes fits",
     [a100(max_nodes=3)], {"chat-assistant": deployment(**THREE, replicas=2)},
     [release("1.1.0"), release("1.2.0"), release("1.3.0")], {"a100": (3, True)}, None),
    ("5 replicas of 1 GPU on 4-GPU nodes need 2 nodes per version",
     [a100(), A10G], {"code-completion": deployment(stable="2.0.0", candidate="2.1.0", stage=1, pool="a10g",
                                                    replicas=5)},
     [release("2.0.0", model="code-completion", gpus=1, gpu_type="nvidia-a10g"),
      release("2.1.0", model="code-completion", gpus=1, gpu_type="nvidia-a10g")],
     {"a100": (0, True), "a10g": (4, False)}, None),
    ("two models on one pool add up",
     [a100(max_nodes=2)],
     {"chat-assistant": deployment(), "code-completion": deployment(stable="2.0.0")},
     [release("1.2.0"), release("2.0.0", model="code-completion", gpus=8)],
     {"a100": (2, True)}, ["chat-assistant stable 1.2.0 (1 x 4 GPUs)", "code-completion stable 2.0.0 (1 x 8 GPUs)"]),
    ("a release of another GPU type is left to gpu-placement, not counted",
     [a100()], {"chat-assistant": deployment(candidate="1.3.0", stage=1)},
     [release("1.2.0"), release("1.3.0", gpu_type="nvidia-h100-80gb")], {"a100": (1, True)},
     ["chat-assistant stable 1.2.0 (1 x 4 GPUs)"]),
    ("a replica larger than a node is left to gpu-placement, not counted",
     [a100(gpus_per_node=2)], {"chat-assistant": deployment()}, [release("1.2.0")], {"a100": (0, True)}, []),
    ("a model on a pool the environment lacks adds to no pool",
     [a100()], {"chat-assistant": deployment(pool="h100")}, [release("1.2.0")], {"a100": (0, True)}, []),
    ("a pointer whose release is missing adds nothing",
     [a100()], {"chat-assistant": deployment(candidate="1.9.0", stage=1)}, [release("1.2.0")],
     {"a100": (1, True)}, ["chat-assistant stable 1.2.0 (1 x 4 GPUs)"]),
]


@pytest.mark.parametrize(
    ("pools", "models", "releases", "expected", "needs"), [c[1:] for c in DEMANDS], ids=[c[0] for c in DEMANDS])
def test_pool_demand(pools: list[dict[str, Any]], models: dict[str, ModelDeployment], releases: list[Release],
                     expected: dict[str, tuple[int, bool]], needs: list[str] | None) -> None:
    demand = pool_demand(repository(*releases), environment(pools, models))
    assert {d.pool.name: (d.nodes, d.fits) for d in demand} == expected
    assert [d.pool.name for d in demand] == [p["name"] for p in pools]  # one entry per pool, in file order
    if needs is not None:
        assert demand[0].needs == needs


def test_live_releases_follow_pointer_order_and_skip_missing() -> None:
    repo = repository(release("1.1.0"), release("1.2.0"))
    dep = deployment(candidate="1.3.0", standby="1.1.0", stage=1)
    assert [(p, r.version) for p, r in live_releases(repo, "chat-assistant", dep)] == [
        ("stable", "1.2.0"), ("standby", "1.1.0")]
    assert [p for p, _ in live_releases(repo, "chat-assistant", dep, ("stable", "candidate"))] == ["stable"]
    assert live_releases(repo, "code-completion", dep) == []
