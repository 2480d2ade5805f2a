"""How a registered MLflow model version maps onto a release (docs/mlflow.md has the table).

MLflow's registry knows the version (description, creator, the files) and its run (params,
metrics, tags); a release needs more than that (serving image, GPUs, rollout) and some of it in
stricter form (an e-mail, a sha256, a URI the serving pods can fetch). So the mapping is explicit
and narrow: each release field has one documented MLflow name, anything else MLflow holds is
listed as unused, and what MLflow lacks is left to the parent or to a TODO by the caller.

Conventions, all overridable by naming things this way in MLflow:
- run params -> `lineage.hyperparameters` ("64" -> 64, "2e-5" -> 2e-05, "true" -> true);
- metrics `toxicity`, `win_rate_vs_current`, `latency_p99_ms`, `adversarial_pass_rate` ->
  `evaluation.<same>`; `benchmark.<name>` -> `evaluation.benchmarks.<name>`;
- tags `base_model` (`hf://<org>/<repo>@<commit>`) or `base_model.<field>`, `dataset.<field>`,
  `training.<field>` -> `lineage.<same>`; `mlflow.source.git.commit` -> `revision`;
- the version's files by name (`model.safetensors` -> weights, `tokenizer.json` -> tokenizer...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .huggingface import hub_base_model
from .release import Evaluation
from .release_import import ARTIFACT_SLOTS, FETCHABLE_SCHEMES, Imported, ImportRefused, Supplied
from .types import EMAIL, GIT_REVISION

MODELS_URI = re.compile(r"models:/(?P<name>[^/@\s]+)(?:/(?P<version>[0-9]+)|@(?P<alias>[\w-]+))")

# The file names each slot is found by, in the version's top directory; first match wins.
SLOT_FILE_NAMES: dict[str, tuple[str, ...]] = {
    "weights": ("model.safetensors", "model.tar", "model.tar.gz", "model.tgz", "weights.tar"),
    "tokenizer": ("tokenizer.json",),
    "config": ("config.json",),
    "system_prompt": ("system_prompt.txt", "system_prompt.md"),
    "few_shot_examples": ("few_shot_examples.jsonl",),
    "classifier": (),
}
EVALUATION_METRICS = tuple(name for name in Evaluation.model_fields if name != "benchmarks")
BENCHMARK_PREFIX = "benchmark."
LINEAGE_TAGS: dict[str, tuple[str, ...]] = {
    "base_model": ("name", "source", "revision", "architecture"),
    "dataset": ("name", "version", "sha256", "size_bytes", "uri"),
    "training": ("cluster", "gpu_type", "gpu_count", "job_id"),
}
INTEGER_FIELDS = {"size_bytes", "gpu_count"}
WHOLE_BLOCKS = ("base_model", "dataset")  # one thing each: tags replace the parent's block as a whole
GIT_COMMIT_TAG = "mlflow.source.git.commit"
FETCHABLE_PREFIXES = tuple(f"{scheme}://" for scheme in FETCHABLE_SCHEMES)
PROXY_SCHEME = "mlflow-artifacts:"


@dataclass(frozen=True)
class RegisteredVersion:
    """What MLflow's client returned for one model version and its run (plain values, no client)."""

    uri: str
    name: str
    version: str
    description: str = ""
    creator: str = ""
    run_id: str | None = None
    run_user: str = ""
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredFile:
    """One of the version's files, hashed from the bytes MLflow served."""

    path: str
    uri: str
    sha256: str
    size_bytes: int


def parse_models_uri(uri: str) -> tuple[str, str | None, str | None]:
    """models:/chat-assistant/7 -> ("chat-assistant", "7", None); models:/chat-assistant@champion
    -> ("chat-assistant", None, "champion")."""
    match = MODELS_URI.fullmatch(uri)
    if not match:
        raise ImportRefused(f"{uri!r} is not a registered model version: write models:/<name>/<version> "
                            "(e.g. models:/chat-assistant/7) or models:/<name>@<alias>")
    return match["name"], match["version"], match["alias"]


def choose_files(listing: list[str], asked: dict[str, str], where: str) -> dict[str, str]:
    """slot -> path of the version's file that fills it: the path asked for (`--artifact
    tokenizer=tok/tokenizer.json`), else the first conventional name present. Weights are required."""
    present = set(listing)
    chosen: dict[str, str] = {}
    for slot, path in asked.items():
        if path not in present:
            raise ImportRefused(f"{where} has no file {path!r} for {slot} (files: {_listed(listing)})")
        chosen[slot] = path
    for slot, names in SLOT_FILE_NAMES.items():
        if slot not in chosen:
            found = next((name for name in names if name in present), None)
            if found is not None:
                chosen[slot] = found
    if "weights" not in chosen:
        raise ImportRefused(f"{where} has none of the weights files {', '.join(SLOT_FILE_NAMES['weights'])} "
                            f"(files: {_listed(listing)}): name it with --artifact weights=<path>")
    return chosen


def _listed(listing: list[str]) -> str:
    return ", ".join(listing[:12]) + (f" and {len(listing) - 12} more" if len(listing) > 12 else "") or "none"


def fetchable_uri(stored: str, destination: str | None) -> str:
    """The URI the serving pods fetch a file from, given where MLflow says it is stored.

    Object stores pass as they are. A proxied location (`mlflow-artifacts:/1/<run>/artifacts/x`)
    only names a path under the server's `--artifacts-destination`, which the client cannot see:
    the caller says it (`--artifacts-destination s3://acme-mlflow/artifacts`) and the path is
    joined to it. Anything else (a local path, http://, dbfs:/) the pods cannot fetch.
    """
    if stored.startswith(FETCHABLE_PREFIXES):
        return stored
    if stored.startswith(PROXY_SCHEME):
        path = re.sub(r"^mlflow-artifacts:(//[^/]*)?/*", "", stored)
        if destination is None:
            raise ImportRefused(
                f"MLflow serves this version's files through its artifact proxy ({stored}); the serving pods "
                "fetch from the store behind it: pass --artifacts-destination with the tracking server's "
                "--artifacts-destination as the pods reach it, e.g. s3://acme-mlflow/artifacts")
        if not destination.startswith(FETCHABLE_PREFIXES):
            raise ImportRefused(f"--artifacts-destination {destination!r}: the serving pods fetch s3://, gs:// "
                                "or https:// only")
        return f"{destination.rstrip('/')}/{path}"
    raise ImportRefused(f"the serving pods cannot fetch {stored} (s3://, gs:// and https:// only): store the "
                        "model's files in an object store, or serve them through MLflow's artifact proxy")


def import_version(version: RegisteredVersion, files: dict[str, StoredFile]) -> Imported:
    """The release values MLflow supplies for this version, and what of MLflow's went unused."""
    supplied: list[Supplied] = []
    unused: list[str] = []
    remarks: list[str] = []

    def give(path: tuple[str, ...], value: object, origin: str) -> None:
        supplied.append(Supplied(path, value, f"MLflow {origin}"))

    for slot, stored in files.items():
        give(ARTIFACT_SLOTS[slot], {"uri": stored.uri, "sha256": stored.sha256, "size_bytes": stored.size_bytes},
             f"file {stored.path} (sha256 of the bytes served)")
    _identity(version, give, remarks)
    if version.params:
        give(("lineage", "hyperparameters"), {k: typed_param(v) for k, v in sorted(version.params.items())},
             "run params")
    for name, value in sorted(version.metrics.items()):
        if name in EVALUATION_METRICS:
            give(("evaluation", name), value, f"run metric {name}")
        elif name.startswith(BENCHMARK_PREFIX) and len(name) > len(BENCHMARK_PREFIX):
            give(("evaluation", "benchmarks", name[len(BENCHMARK_PREFIX):]), value, f"run metric {name}")
        else:
            unused.append(f"metric {name}")
    missing = _lineage_tags(version.tags, give, unused)
    return Imported(f"MLflow {version.uri}", tuple(supplied), tuple(unused), tuple(remarks), tuple(missing))


def _identity(version: RegisteredVersion, give, remarks: list[str]) -> None:
    commit = version.tags.get(GIT_COMMIT_TAG, "")
    if re.fullmatch(GIT_REVISION, commit):
        give(("revision",), commit, f"run tag {GIT_COMMIT_TAG}")
    if version.description.strip():
        give(("description",), version.description.strip(), "version description")
    creator = next((who for who in (version.creator, version.run_user) if re.fullmatch(EMAIL, who)), None)
    if creator:
        give(("lineage", "created_by"), creator, "version creator")
    elif version.creator or version.run_user:
        remarks.append(f"MLflow's creator {version.creator or version.run_user!r} is not an e-mail address, "
                       "so lineage.created_by is not taken from MLflow")


def _lineage_tags(tags: dict[str, str], give, unused: list[str]) -> list[Supplied]:
    """Tags -> lineage values. A base model or dataset is one thing: tags for it replace the
    parent's whole block, and a field they leave out comes back as missing (a TODO), never as the
    parent's value beside new ones. Training fields are independent and overlay one by one."""
    groups: dict[str, dict[str, object]] = {}
    read: dict[str, list[str]] = {}
    for name, value in sorted(tags.items()):
        group, _, key = name.partition(".")
        if name == "base_model":
            try:
                groups.setdefault("base_model", {}).update(hub_base_model(value))
            except ValueError as err:
                raise ImportRefused(f"MLflow run tag base_model: {err}") from None
            read.setdefault(group, []).append(name)
        elif group in LINEAGE_TAGS and key in LINEAGE_TAGS[group]:
            if group in WHOLE_BLOCKS:
                groups.setdefault(group, {})[key] = _field_value(name, key, value)
                read.setdefault(group, []).append(name)
            else:
                give(("lineage", group, key), _field_value(name, key, value), f"run tag {name}")
        elif not name.startswith("mlflow."):
            unused.append(f"tag {name}")
    missing: list[Supplied] = []
    for group, given in groups.items():
        values = {key: given[key] for key in LINEAGE_TAGS[group] if key in given}  # in the file's order
        give(("lineage", group), values, "run tags " + ", ".join(read[group]))
        for key in [k for k in LINEAGE_TAGS[group] if k not in given]:
            missing.append(Supplied(("lineage", group, key), None,
                                    f"MLflow's {group}.* tags do not give {key}: tag {group}.{key} or fill in"))
    return missing


def _field_value(tag: str, key: str, value: str) -> object:
    if key not in INTEGER_FIELDS:
        return value
    try:
        return int(value)
    except ValueError:
        raise ImportRefused(f"MLflow run tag {tag}={value!r} is not a whole number") from None


def typed_param(value: str) -> object:
    """MLflow stores params as text; the release keeps numbers and booleans typed.
    "64" -> 64, "2e-5" -> 2e-05, "True" -> True, "lora" -> "lora", "nan" -> "nan" (not a number here)."""
    if re.fullmatch(r"[+-]?[0-9]+", value):
        return int(value)
    if re.fullmatch(r"[+-]?([0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)([eE][+-]?[0-9]+)?", value):
        return float(value)
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value
