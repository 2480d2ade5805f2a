"""Properties of the pure desired state (`reconciler.core.desired`): traffic weights, header
routes, determinism, unique names, and rollbacks that change routes only.

The repository is loaded once per module (from a private copy of the example) and variants are
built in memory with `model_copy` / `dataclasses.replace`, so no test touches the disk it shares.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.fleet import generate_fleet
from reconciler.adapters.deployable import fetch_script, load_desired_state
from reconciler.adapters.repo_loader import load_repository
from reconciler.core.desired import DesiredState, ModelState, NotDeployable, desired_state
from reconciler.core.release import Release, Stage
from reconciler.core.repository import Repository

from ..conftest import copy_example

# derandomize: the same examples every run, so a failure is reproducible and CI never flakes.
SETTINGS = settings(max_examples=60, deadline=None, database=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])

HEADER = "x-model-version"
SCRIPT = fetch_script()
Key = tuple[str, str, str]


# --- helpers -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_example(tmp_path_factory.mktemp("desired") / "repo")


@pytest.fixture(scope="module")
def repo(root: Path) -> Repository:
    loaded = load_repository(root)
    assert not loaded.errors, loaded.errors
    return loaded.repository


def state(repo: Repository, environment: str) -> DesiredState:
    return desired_state(repo, environment, SCRIPT)


def with_deployment(repo: Repository, environment: str, model: str, **update: Any) -> Repository:
    """The repository with one model's pointers changed in one environment (in memory)."""
    env = repo.environments[environment]
    dep = env.models[model].model_copy(update=update)
    env = env.model_copy(update={"models": {**env.models, model: dep}})
    return dataclasses.replace(repo, environments={**repo.environments, environment: env})


def with_release(repo: Repository, release: Release) -> Repository:
    """The repository with the release of the same model and version replaced by `release`."""
    entries = tuple(
        dataclasses.replace(e, release=release)
        if (e.release.model, e.release.version) == (release.model, release.version) else e
        for e in repo.releases
    )
    assert repo.release(release.model, release.version) is not None
    return dataclasses.replace(repo, releases=entries)


def with_stages(release: Release, strategy: str, stages: list[Stage]) -> Release:
    return release.model_copy(update={"rollout": release.rollout.model_copy(update={"strategy": strategy,
                                                                                    "stages": stages})})


def model_state(desired: DesiredState, model: str):
    return next(m for m in desired.models if m.model == model)


def subset(version: str) -> str:
    return "v" + version.replace(".", "-")


def route_groups(virtual_service: dict) -> list[list[dict]]:
    """The http routes split per origin (mesh, gateway), each group in Istio's matching order."""
    groups: dict[tuple, list[dict]] = {}
    for route in virtual_service["spec"]["http"]:
        origin = tuple(route["match"][0]["gateways"])
        groups.setdefault(origin, []).append(route)
    assert [g for g in groups] == [("mesh",), (virtual_service["spec"]["gateways"][1],)], groups.keys()
    return list(groups.values())


def weighted_routes(virtual_service: dict) -> list[dict]:
    """The weighted route of each origin: the last of its group, and the only one named *-weighted."""
    out = []
    for group in route_groups(virtual_service):
        named = [r for r in group if r["name"].endswith("-weighted")]
        assert named == [group[-1]], [r["name"] for r in group]
        out.append(group[-1])
    assert len(out) == 2
    return out


def weights(route: dict) -> dict[str, int]:
    """subset -> weight of a weighted route; every destination appears once."""
    subsets = [d["destination"]["subset"] for d in route["route"]]
    assert len(subsets) == len(set(subsets)), subsets
    return {d["destination"]["subset"]: d["weight"] for d in route["route"]}


def check_split(desired: DesiredState, model: str, expected: dict[str, int],
                mirror: tuple[str, int] | None = None) -> None:
    """Both weighted routes (mesh, gateway) carry `expected` (version -> percent), summing to 100."""
    assert sum(expected.values()) == 100
    ms = model_state(desired, model)
    assert ms.split.weights == expected
    for route in weighted_routes(ms.virtual_service):
        got = weights(route)
        assert sum(got.values()) == 100, (route["name"], got)
        assert got == {subset(v): w for v, w in expected.items()}, route["name"]
        assert mirror_targets(route) == expected_mirrors(ms, mirror), route["name"]
    pointer = ms.pointer_config["data"]
    candidate = ms.versions.get("candidate")
    assert pointer["current_version"] == ms.versions["stable"]
    assert pointer["canary_weight"] == str(expected.get(candidate, 0) if candidate else 0)
    assert pointer["mirror_percent"] == str(mirror[1] if mirror else 0)


def mirror_targets(route: dict) -> list[tuple[str, float]]:
    """(subset, or the host of another Service, percent) of every mirror, in either of Istio's forms."""
    if "mirror" in route:
        assert "mirrors" not in route  # Istio takes one form or the other
        found = [{"destination": route["mirror"], "percentage": route["mirrorPercentage"]}]
    else:
        assert "mirrorPercentage" not in route
        found = route.get("mirrors", [])
    return [(m["destination"].get("subset") or m["destination"]["host"], m["percentage"]["value"]) for m in found]


def expected_mirrors(ms: ModelState, mirror: tuple[str, int] | None) -> list[tuple[str, float]]:
    """The shadow stage's mirror to the candidate, then the online evaluator's sample, which runs
    exactly while a candidate's stage has two versions to compare (0 < weight < 100, or a mirror)."""
    stage = ms.split.stage
    evaluates = stage is not None and (0 < stage.weight < 100 or stage.mirror > 0)
    assert ms.evaluator is None or evaluates, (ms.model, stage)  # rendered only then (and with an evaluator block)
    out = [(subset(mirror[0]), float(mirror[1]))] if mirror else []
    if ms.evaluator is not None:
        out.append((f"{ms.model}-evaluator.llm-serving.svc.cluster.local", ms.evaluator.sample_percent))
    return out


def expected_for(versions: dict[str, str], candidate_weight: int) -> dict[str, int]:
    out = {v: 0 for v in versions.values()}
    out[versions["stable"]] = 100 - candidate_weight
    if "candidate" in versions:
        out[versions["candidate"]] = candidate_weight
    return out


def by_key(desired: DesiredState) -> dict[Key, dict]:
    """Every object by (kind, namespace, name), failing on a duplicate."""
    keys = [(m["kind"], m["metadata"].get("namespace", ""), m["metadata"]["name"]) for m in desired.manifests()]
    duplicates = [k for k, n in Counter(keys).items() if n > 1]
    assert not duplicates, f"{desired.environment}: objects share a name: {duplicates}"
    return dict(zip(keys, desired.manifests()))


def diff(before: DesiredState, after: DesiredState) -> tuple[set[Key], set[Key], set[Key]]:
    """(changed, removed, added) object keys."""
    a, b = by_key(before), by_key(after)
    changed = {k for k in a.keys() & b.keys() if a[k] != b[k]}
    return changed, a.keys() - b.keys(), b.keys() - a.keys()


def stack_keys(model: str, version: str, namespace: str = "llm-serving") -> set[Key]:
    name = f"{model}-{subset(version)}"
    return {("ConfigMap", namespace, f"{name}-release"), ("ConfigMap", namespace, f"{name}-runtime"),
            ("Deployment", namespace, name), ("Service", namespace, name), ("PodDisruptionBudget", namespace, name)}


def evaluator_keys(model: str, namespace: str = "llm-serving") -> set[Key]:
    """The online evaluator's objects, which exist only while a canary or shadow stage runs."""
    return {(kind, namespace, f"{model}-evaluator") for kind in ("ConfigMap", "Deployment", "Service")}


def route_keys(model: str, *kinds: str, namespace: str = "llm-serving") -> set[Key]:
    names = {"VirtualService": model, "DestinationRule": model, "ConfigMap": f"{model}-pointer"}
    return {(kind, namespace, names[kind]) for kind in kinds}


# --- weights ------------------------------------------------------------------------------------

def candidate_arrangements(repo: Repository):
    """(environment, model, stable, release): every example release as the candidate of every
    environment that deploys its model, against the environment's stable (or, when the release
    is that stable, the newest other version)."""
    for environment, env in sorted(repo.environments.items()):
        for model, dep in sorted(env.models.items()):
            for version in repo.versions(model):
                stable = dep.stable if version != dep.stable else next(
                    v for v in reversed(repo.versions(model)) if v != version)
                yield environment, model, stable, repo.release(model, version)


def test_weights_sum_to_100_at_every_stage_of_every_example_release(repo: Repository) -> None:
    checked = 0
    for environment, model, stable, release in candidate_arrangements(repo):
        dep = repo.environments[environment].models[model]
        standby = dep.standby if dep.standby not in (stable, release.version) else None
        for index, stage in enumerate(release.rollout.stages):
            variant = with_deployment(repo, environment, model, stable=stable, candidate=release.version,
                                      standby=standby, stage=index)
            desired = state(variant, environment)
            versions = model_state(desired, model).versions
            assert versions == {k: v for k, v in (("stable", stable), ("candidate", release.version),
                                                  ("standby", standby)) if v}
            mirror = (release.version, stage.mirror) if stage.mirror else None
            check_split(desired, model, expected_for(versions, stage.weight), mirror)
            checked += 1
    # 2 environments x (3 chat releases x 6 stages + 2 code releases x 2 stages)
    assert checked == 2 * (3 * 6 + 2 * 2)


def test_the_example_environments_carry_the_stage_weights_as_committed(repo: Repository) -> None:
    staging = state(repo, "staging")
    check_split(staging, "chat-assistant", {"1.2.0": 99, "1.3.0": 1})
    check_split(staging, "code-completion", {"2.0.0": 100, "2.1.0": 0})
    prod = state(repo, "prod")
    check_split(prod, "chat-assistant", {"1.2.0": 100, "1.1.0": 0})
    check_split(prod, "code-completion", {"2.0.0": 100})


STRATEGIES = st.sampled_from(["canary", "blue-green", "shadow"])
STAGES = st.lists(st.builds(Stage, weight=st.integers(0, 100),
                            mirror=st.one_of(st.just(0), st.integers(0, 100))), min_size=1, max_size=8)


@SETTINGS
@given(strategy=STRATEGIES, stages=STAGES, with_standby=st.booleans(), data=st.data())
def test_weights_sum_to_100_for_random_rollouts(repo: Repository, strategy: str, stages: list[Stage],
                                                with_standby: bool, data: st.DataObject) -> None:
    release = with_stages(repo.release("chat-assistant", "1.3.0"), strategy, stages)
    index = data.draw(st.integers(0, len(stages) - 1), label="stage")
    variant = with_deployment(with_release(repo, release), "staging", "chat-assistant",
                              stage=index, standby="1.1.0" if with_standby else None)
    desired = state(variant, "staging")
    stage = stages[index]
    versions = model_state(desired, "chat-assistant").versions
    assert ("standby" in versions) == with_standby
    check_split(desired, "chat-assistant", expected_for(versions, stage.weight),
                ("1.3.0", stage.mirror) if stage.mirror else None)


def test_no_candidate_means_everything_on_stable(repo: Repository) -> None:
    for environment, env in sorted(repo.environments.items()):
        for model in sorted(env.models):
            variant = with_deployment(repo, environment, model, candidate=None, stage=0, stage_started_at=None)
            desired = state(variant, environment)
            ms = model_state(desired, model)
            assert "candidate" not in ms.versions
            check_split(desired, model, expected_for(ms.versions, 0))
            assert ms.pointer_config["data"]["canary_version"] == ""
            assert ms.pointer_config["data"]["canary_stage"] == ""


def test_blue_green_is_a_0_100_switch(repo: Repository) -> None:
    release = repo.release("code-completion", "2.1.0")
    assert release.rollout.strategy == "blue-green"
    last = len(release.rollout.stages) - 1
    first = state(with_deployment(repo, "staging", "code-completion", stage=0), "staging")
    check_split(first, "code-completion", {"2.0.0": 100, "2.1.0": 0})
    switched = state(with_deployment(repo, "staging", "code-completion", stage=last), "staging")
    check_split(switched, "code-completion", {"2.0.0": 0, "2.1.0": 100})
    for index in range(last + 1):  # never anything but all-or-nothing
        desired = state(with_deployment(repo, "staging", "code-completion", stage=index), "staging")
        for route in weighted_routes(model_state(desired, "code-completion").virtual_service):
            assert sorted(weights(route).values()) == [0, 100]


def test_a_shadow_stage_mirrors_to_the_candidate_while_users_get_stable(repo: Repository) -> None:
    release = with_stages(repo.release("chat-assistant", "1.3.0"), "shadow",
                          [Stage(weight=0, mirror=10), Stage(weight=100)])
    variant = with_deployment(with_release(repo, release), "staging", "chat-assistant", stage=0)
    ms = model_state(state(variant, "staging"), "chat-assistant")
    assert ms.split.mirror == ("1.3.0", 10)
    check_split(state(variant, "staging"), "chat-assistant", {"1.2.0": 100, "1.3.0": 0}, mirror=("1.3.0", 10))
    for route in ms.virtual_service["spec"]["http"]:
        if not route["name"].endswith("-weighted"):  # a pinned request is served, not mirrored
            assert "mirror" not in route and "mirrorPercentage" not in route and "mirrors" not in route
    assert ms.pointer_config["data"]["mirror_percent"] == "10"


# --- header routes ---------------------------------------------------------------------------------

def arrangements(repo: Repository):
    """The example environments plus variants with three live versions and with no candidate."""
    yield repo, "staging"
    yield repo, "prod"
    yield with_deployment(repo, "staging", "chat-assistant", standby="1.1.0", stage=0), "staging"
    yield with_deployment(repo, "prod", "chat-assistant", candidate="1.3.0", stage=5), "prod"
    yield with_deployment(repo, "staging", "chat-assistant", candidate=None, stage=0), "staging"


def test_every_live_version_is_reachable_by_header_before_the_weighted_route(repo: Repository) -> None:
    for variant, environment in arrangements(repo):
        desired = state(variant, environment)
        deployments = {m["metadata"]["name"]: m for m in desired.manifests() if m["kind"] == "Deployment"}
        for ms in desired.models:
            live = set(ms.versions.values())
            subsets = {s["name"]: s["labels"] for s in ms.destination_rule["spec"]["subsets"]}
            for group in route_groups(ms.virtual_service):
                weighted = group[-1]
                pinned: dict[str, dict] = {}
                for route in group[:-1]:
                    (match,) = route["match"]
                    version = match["headers"][HEADER]["exact"]
                    assert version not in pinned, f"{ms.model}: two routes pin {version}"
                    pinned[version] = route
                    # as specific as the weighted route, plus the header
                    assert {k: v for k, v in match.items() if k != "headers"} == weighted["match"][0]
                    assert route.get("rewrite") == weighted.get("rewrite")
                    (destination,) = route["route"]
                    assert destination.get("weight", 100) == 100
                    assert destination["destination"]["host"] == weighted["route"][0]["destination"]["host"]
                    assert destination["destination"]["subset"] == subset(version[1:])
                assert set(pinned) == {f"v{v}" for v in live}, (environment, ms.model)
                assert "headers" not in weighted["match"][0]
            # the subset a pinned route names selects the pods of that version
            for version in live:
                labels = subsets[subset(version)]
                assert labels == {"version": f"v{version}"}
                pod = deployments[f"{ms.model}-{subset(version)}"]["spec"]["template"]["metadata"]["labels"]
                assert labels.items() <= pod.items()
                assert pod["app"] == ms.model


# --- determinism and names ---------------------------------------------------------------------------

def test_the_desired_state_is_deterministic(root: Path, repo: Repository) -> None:
    for environment in sorted(repo.environments):
        first, second = load_desired_state(root, environment), load_desired_state(root, environment)
        assert first == second
        assert json.dumps(first.manifests(), sort_keys=True) == json.dumps(second.manifests(), sort_keys=True)
        assert first.outputs() == second.outputs()
        again = state(repo, environment)  # and the same value from the already-loaded repository
        assert json.dumps(again.manifests(), sort_keys=True) == json.dumps(first.manifests(), sort_keys=True)


def test_an_unknown_environment_is_not_deployable(repo: Repository) -> None:
    with pytest.raises(NotDeployable, match="known: prod, staging"):
        state(repo, "qa")


def test_no_two_objects_share_a_name_in_the_example(repo: Repository) -> None:
    for variant, environment in arrangements(repo):
        keys = by_key(state(variant, environment))
        assert len(keys) == len(state(variant, environment).manifests())


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Repository:
    out = generate_fleet(tmp_path_factory.mktemp("fleet") / "repo", models=20, versions=3, environments=3)
    loaded = load_repository(out.root)
    assert not loaded.errors, loaded.errors[:3]
    return loaded.repository


def test_no_two_objects_share_a_name_in_a_generated_fleet(fleet: Repository) -> None:
    assert len(fleet.environments) == 3
    for environment, env in sorted(fleet.environments.items()):
        assert len(env.models) == 20
        desired = state(fleet, environment)
        keys = by_key(desired)
        stacks = sum(len(m.stacks) for m in desired.models)
        assert len(keys) == 3 + 5 * stacks + 4 * len(desired.models)  # namespace, fetcher, environment; per stack, per model
        for ms in desired.models:
            check_split(desired, ms.model, dict(ms.split.weights), ms.split.mirror)


# --- rollbacks and promotions change routes only ---------------------------------------------------

def without_weights(value):
    if isinstance(value, dict):
        return {k: without_weights(v) for k, v in value.items() if k != "weight"}
    if isinstance(value, list):
        return [without_weights(v) for v in value]
    return value


def test_a_prod_rollback_to_the_standby_changes_one_route_and_starts_no_pod(repo: Repository) -> None:
    before = state(repo, "prod")
    rolled_back = with_deployment(repo, "prod", "chat-assistant", stable="1.1.0", standby="1.2.0")
    after = state(rolled_back, "prod")
    changed, removed, added = diff(before, after)
    assert (changed, removed, added) == (route_keys("chat-assistant", "VirtualService", "ConfigMap"), set(), set())
    check_split(after, "chat-assistant", {"1.1.0": 100, "1.2.0": 0})
    # and in the VirtualService only the weight numbers move: same routes, same order
    assert without_weights(model_state(after, "chat-assistant").virtual_service) == \
        without_weights(model_state(before, "chat-assistant").virtual_service)
    # the same nodes (only the human-readable `needs` lines name the pointers differently)
    assert [(p.pool, p.desired_nodes) for p in after.node_pools] == [(p.pool, p.desired_nodes)
                                                                     for p in before.node_pools]


def test_a_staging_stage_reset_removes_the_candidate_and_keeps_the_stable(repo: Repository) -> None:
    before = state(repo, "staging")
    reset = with_deployment(repo, "staging", "chat-assistant", candidate=None, stage=0, stage_started_at=None)
    after = state(reset, "staging")
    changed, removed, added = diff(before, after)
    assert changed == route_keys("chat-assistant", "VirtualService", "DestinationRule", "ConfigMap")
    assert removed == stack_keys("chat-assistant", "1.3.0") | evaluator_keys("chat-assistant")  # nothing to compare
    assert added == set()
    check_split(after, "chat-assistant", {"1.2.0": 100})
    # the stable's own objects, and the other model's, are identical (so no pod restarts)
    assert model_state(after, "chat-assistant").stacks == model_state(before, "chat-assistant").stacks[:1]


def test_a_promotion_that_keeps_the_old_stable_as_standby_changes_routes_only(repo: Repository) -> None:
    before = state(repo, "staging")
    promoted = with_deployment(repo, "staging", "chat-assistant", stable="1.3.0", standby="1.2.0",
                               candidate=None, stage=0, stage_started_at=None)
    after = state(promoted, "staging")
    changed, removed, added = diff(before, after)
    # the subsets are the same two versions, so even the DestinationRule stays; the evaluator ends with the canary
    assert (changed, removed, added) == (route_keys("chat-assistant", "VirtualService", "ConfigMap"),
                                         evaluator_keys("chat-assistant"), set())
    check_split(after, "chat-assistant", {"1.3.0": 100, "1.2.0": 0})


def test_the_pod_template_never_depends_on_the_pointer(repo: Repository) -> None:
    """Each version's stack (Deployment, Service, budget, config maps) is the same object whether
    the version is stable, candidate or standby, in both environments."""
    for environment, env in sorted(repo.environments.items()):
        for model in sorted(env.models):
            versions = repo.versions(model)
            for version in versions:
                other = next(v for v in reversed(versions) if v != version)
                layouts = {
                    "stable": {"stable": version, "candidate": None, "standby": other},
                    "candidate": {"stable": other, "candidate": version, "standby": None, "stage": 1},
                    "standby": {"stable": other, "candidate": None, "standby": version},
                }
                stacks = {}
                for pointer, update in layouts.items():
                    ms = model_state(state(with_deployment(repo, environment, model, **update), environment), model)
                    assert ms.versions[pointer] == version
                    stacks[pointer] = next(s for s in ms.stacks if s.release.version == version)
                assert stacks["stable"] == stacks["candidate"] == stacks["standby"], (environment, model, version)
                deployment = stacks["stable"].deployment
                assert json.dumps(deployment, sort_keys=True) == json.dumps(stacks["standby"].deployment,
                                                                            sort_keys=True)
