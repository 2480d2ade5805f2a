"""What the policy pack judges: the planned resources of one stack, as plain values.

The engine hands a policy pack each resource's type, name, URN and properties (camelCase, numbers
as floats); Kubernetes objects' properties are the manifests the program built. `PlannedResource`
holds exactly that, and `Plan` finds what the rules look for across a stack: the environment's
policy, the release documents, the pointers, the serving Deployments, their budgets, the routes and
the GPU node groups. No pulumi imports: the adapter converts the engine's proxies to plain dicts.

Two kinds of gaps are told apart, and neither raises out of a rule:
- a value the engine does not know yet during preview arrives as one of the sentinel strings below
  (`UNKNOWNS`); reading one raises `UnknownValue`, which a rule turns into an *unknown* result;
- a property that is simply absent raises `MissingProperty`, which a rule turns into a violation
  ("Deployment chat-assistant-v1-3-0 has no spec.template").
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from collections.abc import Mapping
from typing import Any, Iterable, Iterator

from ..naming import GPU_RESOURCE, POOL_LABEL

#: The engine's placeholders for values not known during preview (string, number, boolean, array,
#: asset, archive, object). `04da6b54-...` (string) is by far the most common.
UNKNOWN_STRING = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
UNKNOWNS = frozenset({
    UNKNOWN_STRING,
    "3eeb2bf0-c639-47a8-9e75-3b44932eb421",  # number
    "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7",  # boolean
    "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2",  # array
    "030794c1-ac77-496b-92df-f27374a8bd58",  # asset
    "e48ece36-62e2-4504-bad9-02848725956a",  # archive
    "dd056dcd-154b-4c76-9bd3-c8f88648b5ff",  # object
})

#: The node-template tag that tells the cluster autoscaler (and this pack) how many GPUs a node has.
GPUS_PER_NODE_TAG = f"k8s.io/cluster-autoscaler/node-template/resources/{GPU_RESOURCE}"
RELEASE_ANNOTATION = "sluice.dev/release"
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"})


class UnknownValue(Exception):
    """A value the rule needs is not known until the update runs."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


class MissingProperty(Exception):
    """A property the rule needs is absent (`present=False`) or not of the expected shape."""

    def __init__(self, path: str, expected: str = "", *, present: bool = False) -> None:
        super().__init__(path)
        self.path = path
        self.expected = expected
        self.present = present

    def describe(self) -> str:
        if self.present:
            return f"{self.path} is not {self.expected}"
        return f"{self.path} is missing" + (f" (expected {self.expected})" if self.expected else "")


class Invalid(MissingProperty):
    """The inputs contradict each other in a way a rule explains in its own words."""

    def __init__(self, message: str) -> None:
        super().__init__(message, present=True)
        self.message = message

    def describe(self) -> str:
        return self.message


def is_unknown(value: Any) -> bool:
    return isinstance(value, str) and value in UNKNOWNS


def _join(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def get(value: Any, *keys: Any, path: str = "", default: Any = ...) -> Any:
    """Walk `keys` into nested dicts and lists. Raises UnknownValue on a sentinel anywhere on the
    way (or at the end), MissingProperty when a key is absent (unless `default` is given).

    Example: get(props, "spec", "template", "spec") on a Deployment without a template raises
    MissingProperty("spec.template").
    """
    for key in keys:
        if type(value) is str and value in UNKNOWNS:
            raise UnknownValue(path)
        if isinstance(key, int):
            ok = isinstance(value, list) and -len(value) <= key < len(value)
        else:
            ok = (key in value) if type(value) is dict else isinstance(value, Mapping) and key in value
        if not ok:
            if default is not ...:
                return default
            raise MissingProperty(_join(path, key))
        value, path = value[key], _join(path, key)
    if type(value) is str and value in UNKNOWNS:
        raise UnknownValue(path)
    return value


def typed(value: Any, kind: type | tuple[type, ...], path: str, expected: str) -> Any:
    """`value` when it is a `kind`; UnknownValue for a sentinel, MissingProperty otherwise."""
    if is_unknown(value):
        raise UnknownValue(path)
    if not isinstance(value, kind):
        raise MissingProperty(path, expected, present=True)
    return value


def as_int(value: Any, path: str) -> int:
    """A count from the wire: 4.0 or "4" -> 4; anything else is a MissingProperty."""
    if is_unknown(value):
        raise UnknownValue(path)
    if isinstance(value, bool):
        raise MissingProperty(path, "a whole number", present=True)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    raise MissingProperty(path, "a whole number", present=True)


def find_unknown(value: Any, path: str = "") -> str | None:
    """The path of the first unknown value inside `value`, or None."""
    if is_unknown(value):
        return path or "."
    if isinstance(value, Mapping):
        for key, item in value.items():
            found = find_unknown(item, _join(path, key))
            if found:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = find_unknown(item, _join(path, i))
            if found:
                return found
    return None


@dataclass(frozen=True)
class PlannedResource:
    """One resource as the engine describes it to a policy pack."""

    urn: str
    type: str
    name: str
    props: Mapping[str, Any] = field(default_factory=dict)

    @property
    def stack(self) -> str:
        """urn:pulumi:<stack>::<project>::<type>::<name> -> <stack>: the environment, one stack each."""
        parts = self.urn.split("::")
        return parts[0].rsplit(":", 1)[-1] if parts and parts[0].startswith("urn:pulumi:") else ""

    @property
    def kind(self) -> str:
        """The Kubernetes kind for `kubernetes:<group>/<version>:<Kind>` types, else ""."""
        return self.type.rsplit(":", 1)[-1] if self.type.startswith("kubernetes:") else ""

    def is_kind(self, *kinds: str) -> bool:
        return self.kind in kinds

    @property
    def object_name(self) -> str:
        """metadata.name when known, else the resource name."""
        name = known(self.props, "metadata", "name")
        return name if isinstance(name, str) and name else self.name

    @property
    def label(self) -> str:
        """"Deployment chat-assistant-v1-3-0", "NodeGroup a100": how messages name the object."""
        return f"{self.kind or self.type.rsplit(':', 1)[-1]} {self.object_name}"

    def labels(self) -> Mapping[str, Any]:
        labels = known(self.props, "metadata", "labels")
        return labels if isinstance(labels, Mapping) else {}

    def namespace(self) -> str:
        namespace = known(self.props, "metadata", "namespace")
        return namespace if isinstance(namespace, str) and namespace else "default"


def known(value: Any, *keys: Any) -> Any:
    """Like `get`, but None for anything absent or unknown: for names in messages, never for judging."""
    try:
        return get(value, *keys, default=None)
    except UnknownValue:
        return None


# ---------------------------------------------------------------------------------------------
# Pods


def pod_spec(resource: PlannedResource) -> tuple[Mapping[str, Any], str]:
    """The pod spec of a workload and its path: spec.template.spec for a Deployment."""
    props = resource.props
    if resource.kind == "Pod":
        path = ("spec",)
    elif resource.kind == "CronJob":
        path = ("spec", "jobTemplate", "spec", "template", "spec")
    else:
        path = ("spec", "template", "spec")
    spec = get(props, *path)
    return typed(spec, Mapping, ".".join(path), "an object"), ".".join(path)


def pod_labels(resource: PlannedResource) -> Mapping[str, Any]:
    """The pod template's labels (a Pod's own labels), {} when absent."""
    if resource.kind == "Pod":
        return resource.labels()
    labels = known(resource.props, "spec", "template", "metadata", "labels")
    return labels if isinstance(labels, Mapping) else {}


def containers(spec: Mapping[str, Any], spec_path: str, *,
               init: bool = True) -> Iterator[tuple[Mapping[str, Any], str]]:
    """(container, path) for containers, then initContainers. Absent lists are empty; a
    pod without any container is a MissingProperty."""
    found = False
    for key in ("containers", "initContainers") if init else ("containers",):
        items = get(spec, key, path=spec_path, default=[])
        items = typed(items, list, _join(spec_path, key), "a list")
        for i, item in enumerate(items):
            here = f"{_join(spec_path, key)}[{i}]"
            yield typed(item, Mapping, here, "a container"), here
            found = found or key == "containers"
    if not found:
        raise MissingProperty(_join(spec_path, "containers"), "at least one container")


def container_name(container: Mapping[str, Any], path: str) -> str:
    name = container.get("name")
    return name if isinstance(name, str) and not is_unknown(name) else path


def gpu_limit(container: Mapping[str, Any], path: str) -> int:
    """GPUs a container is limited to, 0 when it sets none."""
    value = get(container, "resources", "limits", GPU_RESOURCE, path=path, default=None)
    if value is None:
        return 0
    return as_int(value, f"{path}.resources.limits.{GPU_RESOURCE}")


# ---------------------------------------------------------------------------------------------
# Release documents and the environment


@dataclass(frozen=True)
class ReleaseDocument:
    """`release.json` of a `<model>-vX-Y-Z-release` ConfigMap: the release the program deploys.

    `doc` is the envelope {"full_id", "bundle_digest", "first_release", "release": {...}}.
    """

    resource: PlannedResource
    doc: Mapping[str, Any]

    @property
    def release(self) -> Mapping[str, Any]:
        release = get(self.doc, "release", path="release.json")
        return typed(release, Mapping, "release.json.release", "an object")

    @property
    def model(self) -> str:
        value = self.doc.get("release", {}).get("model") if isinstance(self.doc.get("release"), Mapping) else None
        if isinstance(value, str) and not is_unknown(value):
            return value
        app = self.resource.labels().get("app")
        return app if isinstance(app, str) else ""

    @property
    def version(self) -> str:
        value = self.doc.get("release", {}).get("version") if isinstance(self.doc.get("release"), Mapping) else None
        if isinstance(value, str) and not is_unknown(value):
            return value
        label = self.resource.labels().get("version")
        return label[1:] if isinstance(label, str) and label.startswith("v") else ""

    @property
    def full_id(self) -> str:
        """chat-assistant/v1.3.0-4f2a9c1d07e5, or the best name the document allows."""
        full_id = self.doc.get("full_id")
        if isinstance(full_id, str) and full_id and not is_unknown(full_id):
            return full_id
        return f"{self.model}/v{self.version}" if self.model else self.resource.object_name


def release_json(resource: PlannedResource) -> Mapping[str, Any] | None:
    """The parsed `data["release.json"]` of a ConfigMap, None when the map holds no release.

    Raises UnknownValue when the text is unknown, MissingProperty when it is not a JSON object.
    """
    if not resource.is_kind("ConfigMap"):
        return None
    data = get(resource.props, "data", default=None)
    if not isinstance(data, Mapping) or "release.json" not in data:
        return None
    text = get(data, "release.json", path="data")
    if not isinstance(text, str):
        raise MissingProperty('data["release.json"]', "a JSON text", present=True)
    try:
        doc = json.loads(text)
    except ValueError as error:
        raise MissingProperty('data["release.json"]', f"valid JSON ({error})", present=True) from None
    if not isinstance(doc, dict):
        raise MissingProperty('data["release.json"]', "a JSON object", present=True)
    return doc


@dataclass(frozen=True)
class Pointer:
    """`<model>-pointer`: which version is current, which is the canary and at which stage."""

    resource: PlannedResource
    model: str
    data: Mapping[str, Any]

    def value(self, key: str) -> str:
        """The text of `data[key]`, "" when absent; raises UnknownValue when not known yet."""
        value = get(self.data, key, path="data", default="")
        return value if isinstance(value, str) else str(value)

    @property
    def current(self) -> str:
        return self.value("current_version")

    @property
    def canary(self) -> str:
        return self.value("canary_version")

    @property
    def standby(self) -> str:
        return self.value("standby_version")

    def roles(self) -> dict[str, str]:
        """version -> pointer: {"1.2.0": "stable", "1.3.0": "candidate"}; unknown values are left out."""
        roles: dict[str, str] = {}
        for key, role in (("current_version", "stable"), ("canary_version", "candidate"),
                          ("standby_version", "standby")):
            try:
                version = self.value(key)
            except UnknownValue:
                continue
            if version:
                roles.setdefault(version, role)
        return roles


class Plan:
    """The planned resources of one stack, with the lookups the stack rules share.

    Parsed documents are cached per plan; a plan is built per AnalyzeStack call. Resources are kept
    in URN order, so results (and the order of what a message lists) do not depend on the order in
    which the program happened to register them.
    """

    def __init__(self, resources: Iterable[PlannedResource]) -> None:
        self.resources = tuple(sorted(resources, key=lambda r: r.urn))

    @cached_property
    def stack(self) -> str:
        return next((r.stack for r in self.resources if r.stack), "")

    def of_kind(self, *kinds: str) -> list[PlannedResource]:
        return [r for r in self.resources if r.is_kind(*kinds)]

    @cached_property
    def environment_config(self) -> PlannedResource | None:
        """The `sluice-environment` ConfigMap: the environment's name and `policy.json`."""
        for resource in self.of_kind("ConfigMap"):
            data = get(resource.props, "data", default=None)
            if isinstance(data, Mapping) and "policy.json" in data:
                return resource
        return None

    @cached_property
    def environment(self) -> str:
        """The environment's name: `data.environment` of the environment ConfigMap, else the stack."""
        config = self.environment_config
        if config is not None:
            name = get(config.props, "data", "environment", default=None)
            if isinstance(name, str) and name and not is_unknown(name):
                return name
        return self.stack or "this stack"

    @cached_property
    def releases(self) -> dict[tuple[str, str], ReleaseDocument | Exception]:
        """(model, version) -> the release document, or the error that kept it from being read."""
        found: dict[tuple[str, str], ReleaseDocument | Exception] = {}
        for resource in self.of_kind("ConfigMap"):
            try:
                doc = release_json(resource)
            except (UnknownValue, MissingProperty) as error:
                labels = resource.labels()
                version = labels.get("version", "")
                key = (str(labels.get("app", resource.object_name)),
                       version[1:] if isinstance(version, str) and version.startswith("v") else str(version))
                found[key] = error
                continue
            if doc is not None:
                document = ReleaseDocument(resource, doc)
                found.setdefault((document.model, document.version), document)
        return found

    def release(self, model: str, version: str) -> ReleaseDocument:
        """The release document of a live version. Raises MissingProperty when the plan has none,
        UnknownValue when it is not known yet."""
        document = self.releases.get((model, version))
        if document is None:
            raise MissingProperty(f"the release ConfigMap of {model} {version}",
                                  f"a ConfigMap with release.json for {model} {version}")
        if isinstance(document, Exception):
            raise document
        return document

    @cached_property
    def pointers(self) -> dict[str, Pointer]:
        """model -> its pointer ConfigMap (a ConfigMap whose data has current_version)."""
        found: dict[str, Pointer] = {}
        for resource in self.of_kind("ConfigMap"):
            data = get(resource.props, "data", default=None)
            if not isinstance(data, Mapping) or "current_version" not in data:
                continue
            app = resource.labels().get("app")
            name = resource.object_name
            model = app if isinstance(app, str) and app else name.removesuffix("-pointer")
            found.setdefault(model, Pointer(resource, model, data))
        return found

    def workloads(self) -> list[PlannedResource]:
        return [r for r in self.resources if r.kind in WORKLOAD_KINDS]

    def serving_deployments(self) -> list[PlannedResource]:
        return [r for r in self.of_kind("Deployment") if is_serving(r)]

    def node_groups(self) -> list[PlannedResource]:
        return [r for r in self.resources if r.type == "aws:eks/nodeGroup:NodeGroup"]


def is_serving(resource: PlannedResource) -> bool:
    """A model server: a Deployment labelled `app` and `version` (Istio's contract), on its pods or,
    when the template is broken, on the object itself."""
    if not resource.is_kind("Deployment"):
        return False
    labels = pod_labels(resource) or resource.labels()
    return "app" in labels and "version" in labels


def pool_of(spec: Mapping[str, Any], spec_path: str) -> str:
    """The GPU pool a pod selects (nodeSelector sluice.dev/gpu-pool); MissingProperty when none."""
    pool = get(spec, "nodeSelector", POOL_LABEL, path=spec_path)
    if not isinstance(pool, str) or not pool:
        raise MissingProperty(f"{spec_path}.nodeSelector.{POOL_LABEL}", "a pool name", present=True)
    return pool
