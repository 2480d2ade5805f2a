"""Rules on the release documents (`release.json` of each `<model>-vX-Y-Z-release` ConfigMap).

Bundle hashes and lineage are judged on the document alone (one resource); the pre-deployment
gates and approvals also need the environment's policy (`sluice-environment`) and the pointer, so
they are stack rules. The gates and the approval count are the very functions `reconciler validate`
runs (`evaluate_predeployment`, `approver_problems`), on values rebuilt from the documents.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from functools import partial
from collections.abc import Mapping
from typing import Any, Callable, Iterator, TypeVar

from pydantic import BaseModel, ValidationError

from ..config_manifests import EVALUATION_KEY
from ..environment import Policy
from ..evaluation_artifact import artifact_problems
from ..findings import format_path
from ..predeployment import GateResult, evaluate_predeployment
from ..release import Evaluation
from ..rules.environment_rules import approver_problems
from ..types import SHA256
from . import Scope, policy
from .resources import (
    MissingProperty,
    Plan,
    PlannedResource,
    ReleaseDocument,
    find_unknown,
    get,
    release_json,
    typed,
    UnknownValue,
)
from .results import PolicyResult, guarded, violation

M = TypeVar("M", bound=BaseModel)
_SHA256 = re.compile(SHA256)
REQUIRED_ARTIFACTS = ("weights", "tokenizer", "config", "system_prompt")
OPTIONAL_ARTIFACTS = ("few_shot_examples",)


def document_of(resource: PlannedResource) -> ReleaseDocument | None:
    doc = release_json(resource)
    return ReleaseDocument(resource, doc) if doc is not None else None


def release_file(document: ReleaseDocument) -> str:
    return f"releases/{document.model}/{document.version}.yaml" if document.model else "the release file"


def validated(model: type[M], value: Any, path: str) -> M:
    """A core model from a document part, with the first validation error as a MissingProperty."""
    found = find_unknown(value, path)
    if found:
        raise UnknownValue(found)
    try:
        return model.model_validate_json(json.dumps(value))
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise MissingProperty(f"{path}.{where}" if where else path, f"valid: {first['msg']}", present=True) from None


# ---------------------------------------------------------------------------------------------
# bundle-hashes


def _artifact(document: ReleaseDocument, artifact: Any, path: str) -> Iterator[PolicyResult]:
    fix = (f"record the artifact's sha256 (64 lowercase hex digits, as `sha256sum` prints them) in "
           f"{release_file(document)}")
    who = f"{document.resource.stack}: {document.full_id}"
    artifact = typed(artifact, Mapping, path, "an artifact with uri and sha256")
    digest = get(artifact, "sha256", path=path, default=None)
    uri = artifact.get("uri", "?")
    if digest is None or digest == "":
        yield violation(who, f"{path} ({uri}) has no sha256, so the init container cannot verify its bytes", fix,
                        document.resource.urn)
    elif not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        yield violation(who, f"{path} ({uri}) has sha256 {digest!r}, which is not 64 lowercase hex digits", fix,
                        document.resource.urn)


def _bundle(document: ReleaseDocument) -> Iterator[PolicyResult]:
    base = "release.json.release.bundle"
    bundle = typed(get(document.release, "bundle", path="release.json.release"), Mapping, base, "the bundle")
    fix = f"every bundle artifact needs a uri and a sha256 in {release_file(document)}"
    who = f"{document.resource.stack}: {document.full_id}"
    for name in REQUIRED_ARTIFACTS:
        if bundle.get(name) is None:
            yield violation(who, f"bundle.{name} is missing", fix, document.resource.urn)
        else:
            yield from guarded(who, fix, document.resource.urn,
                               partial(_artifact, document, bundle[name], f"bundle.{name}"))
    extras = [(f"bundle.{name}", bundle.get(name)) for name in OPTIONAL_ARTIFACTS]
    safety = bundle.get("safety")
    if isinstance(safety, Mapping):
        extras.append(("bundle.safety.classifier", safety.get("classifier")))
    for path, artifact in extras:
        if artifact is not None:
            yield from guarded(who, fix, document.resource.urn, partial(_artifact, document, artifact, path))


def _fetch_list(resource: PlannedResource, document: ReleaseDocument) -> Iterator[PolicyResult]:
    """bundle.json, the init container's fetch list, carries the same hashes."""
    text = get(resource.props, "data", "bundle.json", default=None)
    if text is None:
        return
    who = f"{resource.stack}: {document.full_id}"
    fix = "bundle.json is written by the program from the release: regenerate it, never edit it by hand"
    try:
        fetch = json.loads(typed(text, str, 'data["bundle.json"]', "a JSON text"))
    except ValueError:
        yield violation(who, 'data["bundle.json"] is not valid JSON', fix, resource.urn)
        return
    artifacts = fetch.get("artifacts") if isinstance(fetch, Mapping) else None
    if not isinstance(artifacts, list):
        yield violation(who, 'data["bundle.json"] has no artifacts list', fix, resource.urn)
        return
    for i, artifact in enumerate(artifacts):
        name = artifact.get("name", i) if isinstance(artifact, Mapping) else i
        yield from guarded(who, fix, resource.urn,
                           partial(_artifact, document, artifact, f"bundle.json artifact {name}"))


def _bundle_hashes(resource: PlannedResource) -> Iterator[PolicyResult]:
    document = document_of(resource)
    if document is None:
        return
    yield from guarded(f"{resource.stack}: {document.full_id}", "check the release document", resource.urn,
                       partial(_bundle, document))
    yield from _fetch_list(resource, document)


@policy("bundle-hashes",
        "Every bundle artifact (weights, tokenizer, config, prompts, classifier) has a sha256 of 64 hex digits",
        mandatory=True, scope=Scope.RESOURCE)
def bundle_hashes(resource: PlannedResource) -> Iterator[PolicyResult]:
    yield from _on_release_config(resource, _bundle_hashes)


# ---------------------------------------------------------------------------------------------
# lineage-complete


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _lineage(document: ReleaseDocument) -> Iterator[PolicyResult]:
    who = f"{document.resource.stack}: {document.full_id}"
    urn = document.resource.urn
    file = release_file(document)
    lineage = typed(get(document.release, "lineage", path="release.json.release"), Mapping,
                    "release.json.release.lineage", "the lineage")
    base = lineage.get("base_model")
    base = base if isinstance(base, Mapping) else {}
    for key in ("name", "revision"):
        if find_unknown(base.get(key)):
            raise UnknownValue(f"lineage.base_model.{key}")
        if not _text(base.get(key)):
            yield violation(who, f"lineage.base_model.{key} is missing: the base model cannot be reproduced",
                            f"set lineage.base_model.{key} in {file}"
                            + (" (the exact upstream commit, e.g. the hf:// revision)" if key == "revision" else ""),
                            urn)
    dataset = lineage.get("dataset")
    dataset = dataset if isinstance(dataset, Mapping) else {}
    if not _text(dataset.get("name")):
        yield violation(who, "lineage.dataset.name is missing", f"name the training dataset in {file}", urn)
    digest = dataset.get("sha256")
    if find_unknown(digest):
        raise UnknownValue("lineage.dataset.sha256")
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        shown = "has no sha256" if not digest else f"has sha256 {digest!r}, not 64 lowercase hex digits"
        yield violation(who, f"lineage.dataset {shown}: the training data cannot be verified",
                        f"record the dataset's sha256 in lineage.dataset.sha256 of {file}", urn)
    first = document.doc.get("first_release") is True
    parent = lineage.get("parent_version")
    if find_unknown(parent):
        raise UnknownValue("lineage.parent_version")
    if not first and not _text(parent):
        yield violation(who, f"lineage.parent_version is empty, but this is not the first release of "
                        f"{document.model or 'its model'}", f"set lineage.parent_version in {file} to the release "
                        "this one was derived from", urn)


DocumentCheck = Callable[[ReleaseDocument], Iterator[PolicyResult]]


def _on_release_config(resource: PlannedResource,
                       check: Callable[[PlannedResource], Iterator[PolicyResult]]) -> Iterator[PolicyResult]:
    """`check` on a ConfigMap (other kinds: nothing to say), with gaps in it turned into results."""
    if not resource.is_kind("ConfigMap"):
        return
    yield from guarded(f"{resource.stack}: {resource.label}", "the program writes release.json as a JSON object; "
                       "regenerate it", resource.urn, partial(check, resource))


def _on_release_document(resource: PlannedResource, what: str, check: DocumentCheck) -> Iterator[PolicyResult]:
    """`check` on the release document a ConfigMap holds (none: nothing to say), with gaps in the
    ConfigMap or in the document turned into results."""
    yield from _on_release_config(resource, partial(_document_checked, what=what, check=check))


def _document_checked(resource: PlannedResource, what: str, check: DocumentCheck) -> Iterator[PolicyResult]:
    document = document_of(resource)
    if document is not None:
        yield from guarded(f"{resource.stack}: {document.full_id}", f"check the release's {what}", resource.urn,
                           partial(check, document))


@policy("lineage-complete",
        "Every release names its base model with a revision, its dataset with a sha256, and its parent version "
        "(unless it is the model's first release)",
        mandatory=True, scope=Scope.RESOURCE)
def lineage_complete(resource: PlannedResource) -> Iterator[PolicyResult]:
    yield from _on_release_document(resource, "lineage", _lineage)


# ---------------------------------------------------------------------------------------------
# evaluation-artifact


def _evaluation_artifact(document: ReleaseDocument) -> Iterator[PolicyResult]:
    evaluation = validated(Evaluation, get(document.release, "evaluation", path="release.json.release"),
                           "release.json.release.evaluation")
    if evaluation.artifact is None:
        return
    resource = document.resource
    text = get(resource.props, "data", EVALUATION_KEY, path="", default=None)
    data = None if text is None else typed(text, str, f'data["{EVALUATION_KEY}"]', "a JSON text").encode("utf-8")
    for problem in artifact_problems(document.model, document.version, evaluation, data):
        yield violation(f"{resource.stack}: {document.full_id}", f"{format_path(problem.path)}: {problem.message}",
                        f"{problem.fix} in {release_file(document)}", resource.urn)


@policy("evaluation-artifact",
        "A release's offline evaluation numbers are those of the evaluation artifact it names, whose sha256 it "
        "records (the artifact travels in the release ConfigMap as evaluation.json)",
        mandatory=True, scope=Scope.RESOURCE)
def evaluation_artifact(resource: PlannedResource) -> Iterator[PolicyResult]:
    yield from _on_release_document(resource, "evaluation", _evaluation_artifact)


# ---------------------------------------------------------------------------------------------
# The environment's policy, and the gates


ENV_FIX = ("the program writes the sluice-environment ConfigMap (environment name and policy.json) for the "
           "policy pack; deploy it with the program")


def environment_policy(plan: Plan) -> Policy:
    """The environment's policy from `sluice-environment`; MissingProperty when the plan has none."""
    config = plan.environment_config
    if config is None:
        raise MissingProperty("the sluice-environment ConfigMap", "a ConfigMap with data.policy.json")
    text = typed(get(config.props, "data", "policy.json"), str, "data.policy.json", "a JSON text")
    try:
        value = json.loads(text)
    except ValueError:
        raise MissingProperty("sluice-environment data.policy.json", "valid JSON", present=True) from None
    return validated(Policy, value, "policy.json")


def _gates(plan: Plan, model: str, blocking: bool) -> Iterator[PolicyResult]:
    pointer = plan.pointers[model]
    candidate = plan.release(model, pointer.canary)
    policy_ = environment_policy(plan)
    evaluation = validated(Evaluation, get(candidate.release, "evaluation", path="release.json.release"),
                           "release.json.release.evaluation")
    stable = None
    if pointer.current:
        stable_doc = plan.release(model, pointer.current)
        stable = validated(Evaluation, get(stable_doc.release, "evaluation", path="release.json.release"),
                           "release.json.release.evaluation")
    results: list[GateResult] = evaluate_predeployment(evaluation, stable, policy_.predeployment)
    for result in results:
        if result.failed and result.blocking == blocking:
            versus = f" vs stable {pointer.current}" if stable is not None and result.gate in ("win-rate",
                                                                                               "latency-p99") else ""
            yield violation(f"{plan.environment}: {candidate.full_id} (candidate)",
                            f"fails the {result.gate} gate{versus}: {result.message}",
                            result.fix or "re-run the offline evaluation", candidate.resource.urn)


def _candidate_models(plan: Plan) -> Iterator[str]:
    for model, pointer in sorted(plan.pointers.items()):
        try:
            canary = pointer.canary
        except UnknownValue:
            canary = "?"  # judged (as unknown) below
        if canary:
            yield model


def _gate_results(plan: Plan, blocking: bool) -> Iterator[PolicyResult]:
    for model in _candidate_models(plan):
        pointer = plan.pointers[model]
        yield from guarded(f"{plan.environment}: candidate of {model}", ENV_FIX if plan.environment_config is None
                           else "check the candidate's release document and the environment's policy",
                           pointer.resource.urn, partial(_gates, plan, model, blocking))


@policy("predeployment-gates",
        "The candidate passes the environment's pre-deployment gates against stable: toxicity below the maximum, "
        "win rate vs current above the minimum, adversarial suite pass rate at least the minimum",
        mandatory=True, scope=Scope.STACK)
def predeployment_gates(plan: Plan) -> Iterator[PolicyResult]:
    yield from _gate_results(plan, blocking=True)


@policy("latency-p99",
        "The candidate's offline latency p99 stays below stable's + the environment's allowance (20% by default)",
        mandatory=False, scope=Scope.STACK)
def latency_p99(plan: Plan) -> Iterator[PolicyResult]:
    yield from _gate_results(plan, blocking=False)


# ---------------------------------------------------------------------------------------------
# approvals


def _approvals(plan: Plan, policy_: Policy, document: ReleaseDocument, role: str) -> Iterator[PolicyResult]:
    approvals = typed(get(document.release, "lineage", "approvals", path="release.json.release", default=[]), list,
                      "release.json.release.lineage.approvals", "a list of approvals")
    pairs = []
    for i, approval in enumerate(approvals):
        path = f"release.json.release.lineage.approvals[{i}]"
        pairs.append((typed(get(approval, "by", path=path), str, f"{path}.by", "an e-mail address"),
                      _instant(get(approval, "at", path=path), f"{path}.at")))
    created_at = _instant(get(document.release, "lineage", "created_at", path="release.json.release"),
                          "release.json.release.lineage.created_at")
    for problem in approver_problems(document.full_id, pairs, created_at, policy_):
        yield violation(f"{plan.environment} (protected)", f"{role} {problem.message}", problem.fix,
                        document.resource.urn)


def _instant(value: Any, path: str) -> datetime:
    """A timezone-aware instant as the release document writes it: "2026-11-13T10:05:00Z"."""
    text = typed(value, str, path, "a date and time")
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise MissingProperty(path, "a date and time such as 2026-11-13T10:05:00Z", present=True) from None
    if at.tzinfo is None:
        raise MissingProperty(path, "a date and time with its zone (Z or +hh:mm)", present=True)
    return at


def _all_approvals(plan: Plan) -> Iterator[PolicyResult]:
    documents = [d for d in plan.releases.values()]
    if not documents:
        return
    policy_ = environment_policy(plan)
    if not policy_.protected:
        return
    roles = {(model, version): role for model, pointer in plan.pointers.items()
             for version, role in pointer.roles().items()}
    for (model, version), document in sorted(plan.releases.items(), key=lambda kv: kv[0]):
        role = roles.get((model, version), "live version")
        if isinstance(document, Exception):
            yield from guarded(f"{plan.environment}: {model} {version} ({role})", "check the release document",
                               "", partial(_raise, document))
            continue
        yield from guarded(f"{plan.environment}: {document.full_id} ({role})", "check the release's approvals",
                           document.resource.urn, partial(_approvals, plan, policy_, document, role))


def _raise(error: Exception) -> Iterator[PolicyResult]:
    raise error
    yield  # pragma: no cover  (a generator)


@policy("approvals",
        "In a protected environment every live version (stable, candidate, standby) has the required number of "
        "distinct approvers, each from the allowed list",
        mandatory=True, scope=Scope.STACK)
def approvals(plan: Plan) -> Iterator[PolicyResult]:
    yield from guarded(f"{plan.environment}", ENV_FIX, "", partial(_all_approvals, plan))
