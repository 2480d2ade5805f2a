"""hf:// references: one table of references checked four ways that must agree.

The rules are tested on reference text only; nothing here contacts the Hub. For each row, the
pure check (`reference_problem`), the pydantic type that `validate` uses, the pattern committed
in schemas/release.schema.json (what editors read) and, for bundle files, the init container's
`hf_url` must give the same verdict.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from reconciler.core.huggingface import (
    PATTERNS,
    HubRef,
    Role,
    base_model_revision_problem,
    hub_base_model,
    parse,
    reference_problem,
)
from reconciler.adapters.repo_loader import load_repository
from reconciler.core.release import BaseModelRef, Release
from reconciler.core.serving_manifests import bundle_files, deployment
from reconciler.core.types import ArtifactUri, BaseModelSource, DatasetUri
from reconciler.runtime import fetch_bundle

from ..conftest import ROOT, load_yaml

C = "7327bd9f6efbbe6101dc6cc4736302b3cbb6e425"  # Llama-Guard-3-1B's commit in the example release
C2 = "1605565b47bb9346c5515c34102e054115b4f98b"
GUARD = "meta-llama/Llama-Guard-3-1B"
TYPES: dict[Role, object] = {"artifact": ArtifactUri, "dataset": DatasetUri, "base_model": BaseModelSource}
SCHEMA = json.loads((ROOT / "schemas" / "release.schema.json").read_text(encoding="utf-8"))
SCHEMA_FIELD = {"artifact": ("Artifact", "uri"), "dataset": ("Dataset", "uri"),
                "base_model": ("BaseModelRef", "source")}


@dataclass(frozen=True)
class Row:
    role: Role
    uri: str
    problem: str | None  # a fragment of the message, None when the reference is good


ROWS = {
    # bundle artifacts: a file of a model repository at a full commit
    "artifact at a full commit": Row("artifact", f"hf://{GUARD}@{C}/model.safetensors", None),
    "artifact in a sub-folder": Row("artifact", f"hf://{GUARD}@{C}/onnx/model.onnx", None),
    "names with _ . and - inside": Row("artifact", f"hf://my_org.x/Qwen2.5-Coder-7B_v.2@{C}/a.json", None),
    "'-.' between letters is a Hub name": Row("artifact", f"hf://org/a-.b@{C}/f", None),
    "a 96-character name": Row("artifact", f"hf://org/{'a' * 96}@{C}/f", None),
    "branch main": Row("artifact", f"hf://{GUARD}@main/model.safetensors", "pins a branch `main`, which can move"),
    "branch with a dash": Row("artifact", f"hf://{GUARD}@my-branch/f", "pins a branch `my-branch`"),
    "tag v1.0": Row("artifact", f"hf://{GUARD}@v1.0/model.safetensors", "pins a tag `v1.0`, which can move"),
    "tag 2024.1": Row("artifact", f"hf://{GUARD}@2024.1/f", "pins a tag `2024.1`"),
    "short hash": Row("artifact", f"hf://{GUARD}@7327bd9/model.safetensors", "pins a short hash `7327bd9`"),
    "39 hex digits": Row("artifact", f"hf://{GUARD}@{C[:39]}/f", f"pins a short hash `{C[:39]}`"),
    "41 hex digits": Row("artifact", f"hf://{GUARD}@{C}0/f", "pins a branch"),
    "uppercase hex": Row("artifact", f"hf://{GUARD}@{C.upper()}/f", f"in uppercase: write it in lowercase, `{C}`"),
    "no revision": Row("artifact", f"hf://{GUARD}/model.safetensors", "pins no revision"),
    "empty revision": Row("artifact", f"hf://{GUARD}@/model.safetensors", "pins no revision"),
    "no file": Row("artifact", f"hf://{GUARD}@{C}", "names no file"),
    "a bare slash is no file": Row("artifact", f"hf://{GUARD}@{C}/", "names no file"),
    "a folder is no file": Row("artifact", f"hf://{GUARD}@{C}/onnx/", "ends with '/', a folder"),
    "a '..' segment": Row("artifact", f"hf://{GUARD}@{C}/../secrets", "'..' segment"),
    "an empty segment": Row("artifact", f"hf://{GUARD}@{C}/a//b", "empty, '.' or '..' segment"),
    "whitespace in the path": Row("artifact", f"hf://{GUARD}@{C}/a b.json", "has whitespace"),
    "a dataset file is not fetched": Row("artifact", f"hf://datasets/acme/x@{C}/a.jsonl", "names a dataset"),
    "a Space file is not fetched": Row("artifact", f"hf://spaces/acme/x@{C}/app.py", "names a Space"),
    "no organisation": Row("artifact", f"hf://gpt2@{C}/f", "names no repository"),
    "no repository at all": Row("artifact", "hf://", "names no repository"),
    "three segments before @": Row("artifact", f"hf://org/repo/extra@{C}/f", "more than <org>/<repo>"),
    "empty organisation": Row("artifact", f"hf:///repo@{C}/f", "organisation `` is not a Hub name"),
    "organisation starts with '-'": Row("artifact", f"hf://-org/repo@{C}/f", "organisation `-org`"),
    "repository ends with '.'": Row("artifact", f"hf://org/repo.@{C}/f", "repository name `repo.`"),
    "'--' in a name": Row("artifact", f"hf://org/re--po@{C}/f", "repository name `re--po`"),
    "'..' in a name": Row("artifact", f"hf://org/re..po@{C}/f", "repository name `re..po`"),
    "a space in a name": Row("artifact", f"hf://org/re po@{C}/f", "repository name `re po`"),
    "a 97-character name": Row("artifact", f"hf://org/{'a' * 97}@{C}/f", "is not a Hub name"),
    # datasets: under hf://datasets/, at a full commit, path optional
    "dataset repository": Row("dataset", f"hf://datasets/acme/support-transcripts@{C}", None),
    "dataset file": Row("dataset", f"hf://datasets/acme/support@{C}/train/part-0.parquet", None),
    "dataset folder": Row("dataset", f"hf://datasets/acme/support@{C}/train/", None),
    "dataset on a branch": Row("dataset", "hf://datasets/acme/support@main", "pins a branch `main`"),
    "dataset without revision": Row("dataset", "hf://datasets/acme/support/train/", "pins no revision"),
    "dataset short hash": Row("dataset", "hf://datasets/acme/support@7327bd9", "pins a short hash"),
    "dataset without datasets/": Row("dataset", f"hf://acme/support@{C}", "a dataset on the Hub is hf://datasets/"),
    "dataset in a Space": Row("dataset", f"hf://spaces/acme/support@{C}", "names a Space"),
    "dataset path with '..'": Row("dataset", f"hf://datasets/acme/support@{C}/../x", "'..' segment"),
    # base model sources: the repository, a full commit only if any
    "base model repository": Row("base_model", "hf://meta-llama/Llama-3.1-70B-Instruct", None),
    "base model at a commit": Row("base_model", f"hf://meta-llama/Llama-3.1-70B-Instruct@{C2}", None),
    "base model on a branch": Row("base_model", "hf://meta-llama/Llama-3.1-70B-Instruct@main", "pins a branch"),
    "base model on a tag": Row("base_model", "hf://meta-llama/Llama-3.1-70B-Instruct@v1.0", "pins a tag `v1.0`"),
    "base model with a file": Row("base_model", f"hf://org/repo@{C2}/config.json", "`source` names the repository"),
    "base model with a trailing slash": Row("base_model", "hf://org/repo/", "`source` names the repository"),
    "base model from a dataset": Row("base_model", "hf://datasets/org/repo", "names a dataset, not a model"),
    "base model without an organisation": Row("base_model", "hf://gpt2", "names no repository"),
}


def _schema_pattern(role: Role) -> str:
    prop = SCHEMA["$defs"][SCHEMA_FIELD[role][0]]["properties"][SCHEMA_FIELD[role][1]]
    return next(p["pattern"] for p in prop.get("anyOf", [prop]) if "pattern" in p)


@pytest.mark.parametrize("row", ROWS.values(), ids=ROWS.keys())
def test_the_check_explains_each_reference(row: Row) -> None:
    problem = reference_problem(row.uri, row.role)
    if row.problem is None:
        assert problem is None
    else:
        assert problem is not None and row.problem in problem, problem
        assert f"`{row.uri}`" in problem, "the message quotes what was found"


@pytest.mark.parametrize("row", ROWS.values(), ids=ROWS.keys())
def test_type_json_schema_and_check_agree(row: Row) -> None:
    adapter = TypeAdapter(TYPES[row.role])
    if row.problem is None:
        assert adapter.validate_python(row.uri) == row.uri
    else:
        with pytest.raises(ValidationError) as caught:
            adapter.validate_python(row.uri)
        assert reference_problem(row.uri, row.role) in str(caught.value)
    assert (re.fullmatch(PATTERNS[row.role], row.uri) is not None) == (row.problem is None)
    in_schema = re.search(_schema_pattern(row.role), row.uri) is not None  # JSON Schema patterns search
    assert in_schema == (row.problem is None)


ARTIFACTS_OK = [r for r in ROWS.values() if r.role == "artifact" and r.problem is None]


@pytest.mark.parametrize("row", ARTIFACTS_OK, ids=[r.uri[:60] for r in ARTIFACTS_OK])
def test_the_init_container_fetches_every_artifact_validate_accepts(row: Row) -> None:
    ref = parse(row.uri)
    url = fetch_bundle.hf_url(row.uri, "https://huggingface.co")
    assert url == f"https://huggingface.co/{ref.repo}/resolve/{ref.revision}/{ref.path}"


@pytest.mark.parametrize("uri", [
    f"hf://{GUARD}@main/model.safetensors", f"hf://{GUARD}@7327bd9/f", f"hf://{GUARD}@{C}",
    f"hf://org/repo/extra@{C}/f", f"hf://{GUARD}@{C}/../f",
])
def test_what_the_init_container_refuses_validate_refuses(uri: str) -> None:
    with pytest.raises(ValueError):
        fetch_bundle.hf_url(uri)
    assert reference_problem(uri, "artifact") is not None


def test_the_pod_can_authenticate_to_the_hub_for_gated_artifacts() -> None:
    repository = load_repository(ROOT).repository
    release = repository.release("chat-assistant", "1.3.0")
    assert release is not None and release.bundle.safety.classifier is not None
    assert release.bundle.safety.classifier.uri.startswith(f"hf://{GUARD}@")
    environment = repository.environments["prod"]
    pod = deployment(release, environment.models["chat-assistant"], environment.namespace)["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    env = {e["name"]: e for e in init.get("env", [])}
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "hf-token", "key": "token", "optional": True}
    # A bundle that never reads from the Hub asks for no token.
    other = repository.release("code-completion", "2.1.0")
    assert not any(f["uri"].startswith("hf://") for f in bundle_files(other))
    other_env = repository.environments["prod"].models["code-completion"]
    (other_init,) = deployment(other, other_env, environment.namespace)["spec"]["template"]["spec"]["initContainers"]
    assert "env" not in other_init


@pytest.mark.parametrize(("uri", "expected"), [
    (f"hf://{GUARD}@{C}/onnx/model.onnx", HubRef("model", GUARD, C, "onnx/model.onnx")),
    (f"hf://{GUARD}@main", HubRef("model", GUARD, "main", None)),
    ("hf://datasets/acme/x", HubRef("dataset", "acme/x", None, None)),
    (f"hf://datasets/acme/x@{C}/", HubRef("dataset", "acme/x", C, "")),
    ("hf://spaces/acme/demo@v2/app.py", HubRef("space", "acme/demo", "v2", "app.py")),
])
def test_parse_keeps_any_revision_for_the_check_to_judge(uri: str, expected: HubRef) -> None:
    ref = parse(uri)
    assert ref == expected
    assert ref.pinned(C).startswith(ref.repo_uri + "@" + C)


def test_a_reference_says_where_it_lives_on_the_hub() -> None:
    ref = parse("hf://datasets/acme/x@main/a.parquet")
    assert (ref.repo_uri, ref.web_url) == ("hf://datasets/acme/x", "https://huggingface.co/datasets/acme/x")
    assert ref.pinned(C) == f"hf://datasets/acme/x@{C}/a.parquet"


# --- the fix each message gives ------------------------------------------------------------------


@pytest.mark.parametrize(("role", "uri", "fix"), [
    ("artifact", f"hf://{GUARD}@main/model.safetensors",
     f"pin the full 40-hex commit, hf://{GUARD}@<commit>/model.safetensors; "
     f"`git ls-remote https://huggingface.co/{GUARD} refs/heads/main` prints it, as does "
     f'`huggingface_hub.HfApi().model_info("{GUARD}", revision="main").sha`'),
    ("artifact", f"hf://{GUARD}/model.safetensors", f"`git ls-remote https://huggingface.co/{GUARD} refs/heads/main`"),
    ("artifact", f"hf://{GUARD}@v1.0/f", f"`git ls-remote https://huggingface.co/{GUARD} 'refs/tags/v1.0*'`"),
    ("artifact", f"hf://{GUARD}@7327bd9/f", "take the one that starts with `7327bd9`"),
    ("artifact", f"hf://{GUARD}@{C}", f"write hf://{GUARD}@{C}/<file>"),
    ("dataset", "hf://datasets/acme/x@main",
     '`git ls-remote https://huggingface.co/datasets/acme/x refs/heads/main` prints it, as does '
     '`huggingface_hub.HfApi().dataset_info("acme/x", revision="main").sha`'),
    ("dataset", f"hf://acme/x@{C}", "e.g. hf://datasets/acme/x@<commit>"),
    ("base_model", f"hf://org/repo@{C2}/config.json", "write source: hf://org/repo and put the commit in `revision`"),
])
def test_each_message_gives_the_fix(role: Role, uri: str, fix: str) -> None:
    assert fix in (reference_problem(uri, role) or "")


def test_a_git_ls_remote_tag_pattern_finds_the_commit_of_an_annotated_tag(tmp_path: Any) -> None:
    """The tag fix quotes `git ls-remote <repo> 'refs/tags/<tag>*'`: on a real repository, its `^{}`
    line is the commit an annotated tag points at (the plain tag line is the tag object)."""
    git = shutil.which("git")
    assert git
    env = {"GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@example.com", "GIT_COMMITTER_NAME": "a",
           "GIT_COMMITTER_EMAIL": "a@example.com", "HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1"}

    def run(*args: str) -> str:
        return subprocess.run([git, *args], cwd=tmp_path, env=env, check=True, capture_output=True,
                              text=True).stdout

    run("init", "-q", "repo")
    run("-C", "repo", "commit", "-q", "--allow-empty", "-m", "weights")
    run("-C", "repo", "tag", "-a", "v1.0", "-m", "release")
    commit = run("-C", "repo", "rev-parse", "HEAD").strip()
    fix = reference_problem(f"hf://{GUARD}@v1.0/f", "artifact") or ""
    pattern = re.search(r"'(refs/tags/v1\.0\*)'", fix)
    assert pattern, fix
    lines = dict(reversed(line.split("\t")) for line in run("ls-remote", "repo", pattern[1]).splitlines())
    assert lines["refs/tags/v1.0^{}"] == commit
    assert reference_problem(f"hf://{GUARD}@{commit}/f", "artifact") is None


# --- base models ----------------------------------------------------------------------------------


def test_hub_base_model_records_repository_and_commit() -> None:
    lineage = hub_base_model(f"hf://meta-llama/Llama-3.1-70B-Instruct@{C2}")
    assert lineage == {"name": "meta-llama/Llama-3.1-70B-Instruct",
                       "source": "hf://meta-llama/Llama-3.1-70B-Instruct", "revision": C2}
    assert BaseModelRef.model_validate(lineage).revision == C2  # what it returns is a valid base model


@pytest.mark.parametrize(("uri", "message"), [
    ("hf://meta-llama/Llama-3.1-70B-Instruct", "pins no revision: pin the full 40-hex commit, "
                                               "hf://meta-llama/Llama-3.1-70B-Instruct@<commit>"),
    ("hf://meta-llama/Llama-3.1-70B-Instruct@main", "pins a branch `main`"),
    ("hf://meta-llama/Llama-3.1-70B-Instruct@1605565", "pins a short hash `1605565`"),
    (f"hf://meta-llama/Llama-3.1-70B-Instruct@{C2}/config.json", "names a file or folder"),
    (f"hf://datasets/acme/x@{C2}", "names a dataset, not a model"),
    ("s3://bucket/base-model/", "is not a Hub reference"),
    ("meta-llama/Llama-3.1-70B-Instruct", "is not a Hub reference"),
])
def test_hub_base_model_refuses_anything_but_a_pinned_repository(uri: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        hub_base_model(uri)


@pytest.mark.parametrize(("source", "revision", "message"), [
    ("hf://org/repo", C2, None),
    (f"hf://org/repo@{C2}", C2, None),
    ("s3://bucket/base/", "v1.0", None),  # other sources keep their owners' revisions
    ("https://example.com/base.tar", "2024-06-01", None),
    ("hf://org/repo", "main", "revision is a branch `main`, which can move: write the full 40-hex commit; "
                             "`git ls-remote https://huggingface.co/org/repo refs/heads/main` prints it"),
    ("hf://org/repo", "v1.0", "revision is a tag `v1.0`"),
    ("hf://org/repo", "1605565", "revision is a short hash `1605565`"),
    ("hf://org/repo", C2.upper(), f"write it in lowercase, `{C2}`"),
    (f"hf://org/repo@{C}", C2, f"revision `{C2}` is not the commit `source` pins (`{C}`)"),
    ("hf://org", "main", None),  # a bad source is reported on `source`, not twice
    (None, "main", None),
])
def test_base_model_revision(source: str | None, revision: str, message: str | None) -> None:
    problem = base_model_revision_problem(source, revision)
    assert problem == message if message is None else message in (problem or ""), problem


def _release(**base_model: Any) -> dict[str, Any]:
    data = load_yaml(ROOT / "releases/chat-assistant/1.3.0.yaml")
    data["lineage"]["base_model"].update(base_model)
    return data


@pytest.mark.parametrize(("change", "path", "message"), [
    ({"revision": "v1.0"}, ("lineage", "base_model", "revision"), "revision is a tag `v1.0`"),
    ({"revision": "main"}, ("lineage", "base_model", "revision"), "revision is a branch `main`"),
    ({"source": "hf://meta-llama/Llama-3.1-70B-Instruct@main"}, ("lineage", "base_model", "source"),
     "pins a branch `main`"),
    ({"source": f"hf://meta-llama/Llama-3.1-70B-Instruct@{C}"}, ("lineage", "base_model", "revision"),
     "is not the commit `source` pins"),
])
def test_release_points_at_the_base_model_field_at_fault(change: dict[str, str], path: tuple[str, ...],
                                                           message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Release.model_validate(_release(**change))
    errors = caught.value.errors()
    assert [e["loc"] for e in errors] == [path]
    assert message in errors[0]["msg"]


def test_a_release_with_a_base_model_pinned_in_source_and_revision_is_valid() -> None:
    release = Release.model_validate(_release(source=f"hf://meta-llama/Llama-3.1-70B-Instruct@{C2}"))
    assert release.lineage.base_model.revision == C2


# --- what editors see: the committed JSON Schema ------------------------------------------------


def _schema_errors(data: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(SCHEMA)
    plain = json.loads(json.dumps(data, default=str))
    # an optional field is anyOf [its type, null]: the deepest path among the branches says which value failed
    paths = [max((c.absolute_path for c in e.context), key=len) if e.context else e.absolute_path
             for e in validator.iter_errors(plain)]
    return sorted(".".join(map(str, path)) for path in paths)


@pytest.mark.parametrize(("change", "errors"), [
    ({}, []),
    ({"source": "s3://acme-llm-base/llama/", "revision": "v1.0"}, []),
    ({"revision": "v1.0"}, ["lineage.base_model.revision"]),
    ({"revision": C2[:7]}, ["lineage.base_model.revision"]),
    ({"source": "hf://meta-llama/Llama-3.1-70B-Instruct@main"}, ["lineage.base_model.source"]),
])
def test_the_json_schema_flags_an_unpinned_base_model(change: dict[str, str], errors: list[str]) -> None:
    assert _schema_errors(_release(**change)) == errors


def test_the_json_schema_flags_an_unpinned_artifact_and_dataset() -> None:
    data = _release()
    data["bundle"]["safety"]["classifier"]["uri"] = f"hf://{GUARD}@main/model.safetensors"
    data["lineage"]["dataset"]["uri"] = "hf://datasets/acme/support-transcripts@v3"
    assert _schema_errors(data) == ["bundle.safety.classifier.uri", "lineage.dataset.uri"]


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed: the ECMA-262 check needs it")
def test_editors_compile_the_patterns_and_agree() -> None:
    """yaml-language-server compiles schema patterns as JavaScript `RegExp(pattern, "u")`; a
    Python-only construct would make editors skip or misread the rule."""
    cases = [(_schema_pattern(r.role), r.uri, r.problem is None) for r in ROWS.values()]
    script = ("const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
              "process.stdout.write(JSON.stringify(cases.map(([p, s]) => new RegExp(p, 'u').test(s))));")
    out = subprocess.run(["node", "-e", script], input=json.dumps(cases), capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [ok for _, _, ok in cases]


# --- agreement on references nobody thought of ---------------------------------------------------

_PIECES = ["hf://", "datasets/", "spaces/", "org", "Repo_1", "a.b", "a-b", "-", ".", "..", "--", "/", "@", " ",
           C, C.upper(), C[:12], "main", "v1.0", "model.safetensors", "x"]


@settings(max_examples=400, deadline=None, derandomize=True)
@given(st.sampled_from(["artifact", "dataset", "base_model"]),
       st.lists(st.sampled_from(_PIECES), min_size=1, max_size=9).map("".join))
def test_the_pattern_accepts_exactly_what_the_check_accepts(role: Role, tail: str) -> None:
    uri = tail if tail.startswith("hf://") else "hf://" + tail
    assert (re.fullmatch(PATTERNS[role], uri) is not None) == (reference_problem(uri, role) is None), uri
