"""Every rendered object against the real schemas, before and after `reconciler render` writes it.

Built-in kinds go through `kubernetes-validate` (strict) at the environment's Kubernetes version,
VirtualService and DestinationRule through Istio's own CRD schema, tightened (tests/manifest_schemas.py).
Negative controls prove the check is not vacuous. Last, a small snapshot of the resource list the
Pulumi program registers under the offline engine (mocks), one line per resource.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml as yaml11  # PyYAML: YAML 1.1, the dialect kubectl and Argo CD read (go-yaml v2)
from ruamel.yaml import YAML

from reconciler.adapters.deployable import load_desired_state
from reconciler.adapters.offline_engine import ProgramRun, RecordedResource, run_program
from reconciler.cli.main import main
from tests.conftest import ROOT, copy_example
from tests.manifest_schemas import validate_manifest

ENVIRONMENTS = ("prod", "staging")
STATES = {env: load_desired_state(ROOT, env) for env in ENVIRONMENTS}


def key(manifest: dict[str, Any]) -> str:
    return f"{manifest['kind']}/{manifest['metadata']['name']}"


CASES = [pytest.param(env, key(m), id=f"{env}-{key(m)}") for env in ENVIRONMENTS for m in STATES[env].manifests()]


def desired(environment: str) -> dict[str, dict[str, Any]]:
    return {key(m): m for m in STATES[environment].manifests()}


def render(*argv: str) -> tuple[int, str, str]:
    """`reconciler render ...` in-process, outside pytest's capture (module-scoped fixtures use it)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["render", *argv])
    return code, out.getvalue(), err.getvalue()


def load_stream(text: str) -> list[dict[str, Any]]:
    return [doc for doc in YAML(typ="safe", pure=False).load_all(text) if doc is not None]


@pytest.fixture(scope="module")
def rendered_stream() -> dict[str, str]:
    streams = {}
    for env in ENVIRONMENTS:
        code, out, err = render("--environment", env, str(ROOT))
        assert code == 0, err
        streams[env] = out
    return streams


@pytest.fixture(scope="module")
def rendered_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    dirs = {}
    for env in ENVIRONMENTS:
        out_dir = tmp_path_factory.mktemp("render") / env
        code, _, err = render("--environment", env, "--out", str(out_dir), str(ROOT))
        assert code == 0, err
        dirs[env] = out_dir
    return dirs


def parsed(source: str, environment: str, streams: dict[str, str], dirs: dict[str, Path]) -> list[dict[str, Any]]:
    if source == "stream":
        return load_stream(streams[environment])
    docs = []
    for path in sorted(dirs[environment].glob("*.yaml")):
        [doc] = load_stream(path.read_text(encoding="utf-8"))
        docs.append(doc)
    return docs


# --- the desired state, as the core builds it -------------------------------------------------------


@pytest.mark.parametrize(("environment", "name"), CASES)
def test_every_desired_object_validates(environment: str, name: str) -> None:
    state = STATES[environment]
    validate_manifest(desired(environment)[name], state.cluster.kubernetes_version)


def test_the_example_environments_pin_a_kubernetes_version_the_schemas_know() -> None:
    # kubernetes-validate would raise SchemaNotFoundError for a version it does not bundle; make a
    # changed version visible here rather than as 55 identical failures.
    assert {env: s.cluster.kubernetes_version for env, s in STATES.items()} == {"prod": "1.33", "staging": "1.33"}


# --- the same objects after `reconciler render` wrote them --------------------------------------------


@pytest.mark.parametrize("source", ["stream", "dir"])
@pytest.mark.parametrize(("environment", "name"), CASES)
def test_every_rendered_object_validates(rendered_stream: dict[str, str], rendered_dirs: dict[str, Path],
                                         source: str, environment: str, name: str) -> None:
    objects = {key(m): m for m in parsed(source, environment, rendered_stream, rendered_dirs)}
    validate_manifest(objects[name], STATES[environment].cluster.kubernetes_version)


@pytest.mark.parametrize("source", ["stream", "dir"])
@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_rendering_round_trips_to_exactly_the_desired_objects(rendered_stream: dict[str, str],
                                                             rendered_dirs: dict[str, Path],
                                                             source: str, environment: str) -> None:
    docs = parsed(source, environment, rendered_stream, rendered_dirs)
    expected = STATES[environment].manifests()
    if source == "stream":
        assert docs == expected  # same objects, same (apply) order
    else:
        assert sorted(docs, key=key) == sorted(expected, key=key)


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_a_yaml_1_1_reader_sees_the_same_objects(rendered_stream: dict[str, str], environment: str) -> None:
    """kubectl and Argo CD read YAML 1.1 (yes/on are booleans, 0755 octal): the writer must quote for them too."""
    assert [d for d in yaml11.safe_load_all(rendered_stream[environment]) if d] == STATES[environment].manifests()


def test_configmap_json_documents_are_block_literals_and_survive(rendered_stream: dict[str, str]) -> None:
    text = rendered_stream["staging"]
    sources = {key(doc): source for source in re.split(r"(?m)^---\n", text)[1:] for doc in load_stream(source)}
    json_values = 0
    for name, manifest in desired("staging").items():
        if manifest["kind"] != "ConfigMap":
            continue
        [doc] = load_stream(sources[name])
        for data_key, value in manifest["data"].items():
            assert doc["data"][data_key] == value, (name, data_key)
            if data_key.endswith(".json"):
                json.loads(doc["data"][data_key])
                json_values += 1
            if "\n" in value:  # readable in a diff: `key: |` then the document, not one escaped line
                assert f"\n  {data_key}: |\n" in sources[name], (name, data_key)
    # release, bundle and 4 runtime documents per live version (4), policy.json and the evaluator's config
    assert json_values == 4 * 6 + 1 + 1
    assert '"{\\n' not in text  # no JSON document squeezed into one double-quoted, escaped line


def test_quoted_numbers_and_empty_strings_stay_strings(rendered_stream: dict[str, str]) -> None:
    docs = {key(d): d for d in load_stream(rendered_stream["staging"])}
    pointer = docs["ConfigMap/chat-assistant-pointer"]["data"]
    assert pointer == {"current_version": "1.2.0", "canary_version": "1.3.0", "canary_weight": "1",
                       "canary_stage": "1", "mirror_percent": "0", "standby_version": ""}
    server = docs["Deployment/chat-assistant-v1-3-0"]["spec"]["template"]["spec"]["containers"][0]
    assert server["resources"]["limits"] == {"nvidia.com/gpu": "4"}
    assert all(isinstance(arg, str) for arg in server["args"])
    assert "--tensor-parallel-size" in server["args"] and "4" in server["args"]
    assert docs["Deployment/chat-assistant-v1-3-0"]["spec"]["replicas"] == 1  # and integers stay integers


def test_a_yaml_1_1_boolean_word_is_quoted(tmp_path: Path) -> None:
    """kubectl and Argo CD read YAML 1.1, where an unquoted `on` is true."""
    repo = copy_example(tmp_path / "repo")
    env_file = repo / "environments" / "staging.yaml"
    env_file.write_text(env_file.read_text().replace("namespace: llm-serving", 'namespace: "on"'))
    code, out, err = render("--environment", "staging", str(repo))
    assert code == 0, err
    expected = load_desired_state(repo, "staging").manifests()
    assert expected[0]["metadata"]["name"] == "on"
    assert load_stream(out) == expected  # YAML 1.2 reads it back...
    assert [d for d in yaml11.safe_load_all(out) if d] == expected  # ...and so does YAML 1.1 (kubectl)


# --- negative controls: the same checks reject broken copies ------------------------------------------


def _deployment_unknown_field(m: dict[str, Any]) -> None:
    m["spec"]["template"]["spec"]["containers"][0]["imagePulPolicy"] = "IfNotPresent"


def _deployment_wrong_type(m: dict[str, Any]) -> None:
    m["spec"]["replicas"] = "one"


def _virtual_service_typo(m: dict[str, Any]) -> None:
    weighted = next(r for r in m["spec"]["http"] if r["name"] == "mesh-weighted")
    weighted["route"][1]["weigth"] = weighted["route"][1].pop("weight")


def _virtual_service_wrong_type(m: dict[str, Any]) -> None:
    next(r for r in m["spec"]["http"] if r["name"] == "mesh-weighted")["route"][0]["weight"] = "99"


def _destination_rule_unknown_field(m: dict[str, Any]) -> None:
    m["spec"]["subsets"][0]["lables"] = m["spec"]["subsets"][0].pop("labels")


@pytest.mark.parametrize(("name", "breakage", "error"), [
    pytest.param("Deployment/chat-assistant-v1-3-0", _deployment_unknown_field, "imagePulPolicy",
                 id="Deployment-unknown-field"),
    pytest.param("Deployment/chat-assistant-v1-3-0", _deployment_wrong_type, r"\$\.spec\.replicas",
                 id="Deployment-wrong-type"),
    pytest.param("VirtualService/chat-assistant", _virtual_service_typo, "weigth", id="VirtualService-weigth"),
    pytest.param("VirtualService/chat-assistant", _virtual_service_wrong_type, r"\$\.spec\.http\[\d+\]\.route\[0\]\.weight",
                 id="VirtualService-weight-as-string"),
    pytest.param("DestinationRule/chat-assistant", _destination_rule_unknown_field, "lables",
                 id="DestinationRule-unknown-field"),
])
def test_a_broken_copy_fails_validation(name: str, breakage, error: str) -> None:  # type: ignore[no-untyped-def]
    original = desired("staging")[name]
    validate_manifest(original, "1.33")  # the control of the control: the unbroken object passes
    broken = copy.deepcopy(original)
    breakage(broken)
    with pytest.raises(AssertionError, match=error):
        validate_manifest(broken, "1.33")


# --- the resource list the program registers (offline engine, update) ----------------------------------


@pytest.fixture(scope="module", params=ENVIRONMENTS)
def program(request: pytest.FixtureRequest) -> tuple[str, ProgramRun]:
    env = request.param
    return env, run_program(ROOT / "infra", project="sluice", stack=env, config={"environment": env}, preview=False)


def _number(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _version_of_subset(run_: ProgramRun) -> dict[tuple[str, str], str]:
    """(host, subset) -> release version, from the DestinationRules (subset v1-2-0 selects version v1.2.0)."""
    subsets = {}
    for r in run_.resources:
        if r.type.endswith(":DestinationRule"):
            for subset in r.inputs["spec"]["subsets"]:
                subsets[(r.inputs["spec"]["host"], subset["name"])] = subset["labels"]["version"].removeprefix("v")
    return subsets


def _routes_summary(r: RecordedResource, versions: dict[tuple[str, str], str]) -> str:
    def version(destination: dict[str, Any]) -> str:
        return versions.get((destination["host"], destination.get("subset", "")), "?")

    summaries = set()
    for route in r.inputs["spec"]["http"]:
        destinations = route["route"]
        if any("x-model-version" in match.get("headers", {}) for match in route.get("match", [])):
            continue  # a header-pinned route (testers, smoke checks), not part of the split
        text = "weights=" + ",".join(f"{version(d['destination'])}:{_number(d.get('weight', 100.0))}"
                                     for d in destinations)
        mirrors = ([{"destination": route["mirror"], "percentage": route["mirrorPercentage"]}]
                   if "mirror" in route else route.get("mirrors", []))
        for mirror in mirrors:
            target = mirror["destination"]
            shown = version(target) if "subset" in target else target["host"].split(".")[0]
            text += f" mirror={shown}:{_number(mirror['percentage']['value'])}%"
        summaries.add(text)
    return " | ".join(sorted(summaries))  # one entry when mesh and gateway routes agree


def resource_line(r: RecordedResource, versions: dict[tuple[str, str], str]) -> str:
    head = f"{r.type} {r.name}"
    inputs = r.inputs
    if r.type == "aws:eks/nodeGroup:NodeGroup":
        scaling = inputs["scalingConfig"]
        return (f"{head} {','.join(inputs['instanceTypes'])} {_number(scaling['minSize'])}..{_number(scaling['maxSize'])}"
                f" desired={_number(scaling['desiredSize'])}")
    if r.type == "kubernetes:apps/v1:Deployment":
        pod = inputs["spec"]["template"]["spec"]
        gpus = [c["resources"]["limits"]["nvidia.com/gpu"] for c in pod["containers"]
                if "nvidia.com/gpu" in c.get("resources", {}).get("limits", {})]
        if not gpus:  # the online evaluator: no GPU, its own command
            return (f"{head} replicas={_number(inputs['spec']['replicas'])} "
                    f"command={' '.join(c for container in pod['containers'] for c in container['command'])}")
        return (f"{head} replicas={_number(inputs['spec']['replicas'])} gpus={'+'.join(gpus)}"
                f" pool={pod['nodeSelector']['sluice.dev/gpu-pool']}")
    if r.type == "kubernetes:core/v1:ConfigMap":
        return f"{head} data={','.join(sorted(inputs['data']))}"
    if r.type == "kubernetes:core/v1:Service":
        return f"{head} selector={','.join(f'{k}:{v}' for k, v in sorted(inputs['spec']['selector'].items()))}"
    if r.type == "kubernetes:policy/v1:PodDisruptionBudget":
        return f"{head} maxUnavailable={_number(inputs['spec']['maxUnavailable'])}"
    if r.type == "kubernetes:networking.istio.io/v1:DestinationRule":
        return f"{head} subsets={','.join(s['name'] for s in inputs['spec']['subsets'])}"
    if r.type == "kubernetes:networking.istio.io/v1:VirtualService":
        return f"{head} {_routes_summary(r, versions)}"
    return head  # components, providers, the namespace, IAM role and policy attachments


def test_resource_list_snapshot(program: tuple[str, ProgramRun], snapshot) -> None:  # type: ignore[no-untyped-def]
    _, run_ = program
    versions = _version_of_subset(run_)
    lines = sorted(resource_line(r, versions) for r in run_.resources)
    assert len(lines) == len(set(lines))  # no resource registered twice
    assert "\n".join(lines) == snapshot
