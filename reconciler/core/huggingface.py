"""Hugging Face Hub references (`hf://`): parsed, and checked to pin a full commit.

Why: a branch or tag on the Hub moves (a re-upload, a model-card fix, a force-push), so a
release that names `@main` could serve other bytes tomorrow than the ones it was evaluated with.
Only a full 40-hex commit is immutable. The rules read the reference text and never contact the
Hub: the same text the init container (reconciler/runtime/fetch_bundle.py) turns into
`<endpoint>/<org>/<repo>/resolve/<commit>/<path>`.

The shapes, as huggingface_hub's `HfFileSystem` writes them:

    hf://<org>/<repo>@<commit>/<file>              one file of a model repository (a bundle artifact)
    hf://datasets/<org>/<name>@<commit>[/<path>]   a dataset repository, or a file or folder in it
    hf://<org>/<repo>[@<commit>]                   a model repository (a base model's `source`)

Each role has one regular expression (exported to JSON Schema, so editors flag what `validate`
flags) and `reference_problem` explains a mismatch in words; tests keep the two in agreement.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Kind = Literal["model", "dataset", "space"]
Role = Literal["artifact", "dataset", "base_model"]

# A repository or organisation name as the Hub accepts it (huggingface_hub.utils.validate_repo_id):
# at most 96 of [A-Za-z0-9_.-], starting and ending with a letter, digit or '_', no '--' or '..'.
_WORD = r"[A-Za-z0-9_]+"
_SEPARATOR = r"(?:-(?:\.-)*\.?|\.(?:-\.)*-?)"  # '-' and '.' alternating: never '--' or '..'
NAME = rf"(?=[^/@]{{1,96}}(?![^/@])){_WORD}(?:{_SEPARATOR}{_WORD})*"
COMMIT = r"[0-9a-f]{40}"
_SEGMENT = r"/(?!\.\.?(?:/|$))[^\s/]+"  # one path segment: not empty, not '.' or '..', no whitespace

PATTERNS: dict[Role, str] = {
    "artifact": rf"hf://{NAME}/{NAME}@{COMMIT}(?:{_SEGMENT})+",
    "dataset": rf"hf://datasets/{NAME}/{NAME}@{COMMIT}(?:{_SEGMENT})*/?",
    "base_model": rf"hf://{NAME}/{NAME}(?:@{COMMIT})?",
}

_PREFIX: dict[Kind, str] = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_SHAPE = re.compile(r"hf://(?:(?P<prefix>datasets|spaces)/)?(?P<org>[^/@]*)/(?P<name>[^/@]*)"
                    r"(?:@(?P<revision>[^/]*))?(?P<path>/.*)?", re.DOTALL)
_NAME = re.compile(NAME)
_COMMIT = re.compile(COMMIT)
_ANY_CASE_COMMIT = re.compile(r"[0-9a-fA-F]{40}")
_SHORT_HASH = re.compile(r"[0-9a-fA-F]{7,39}")
_TAG = re.compile(r"v?[0-9]+(\.[0-9]+)*([-+._][0-9A-Za-z.-]+)?")
SHAPES: dict[Role, str] = {
    "artifact": "hf://<org>/<repo>@<commit>/<file>",
    "dataset": "hf://datasets/<org>/<name>@<commit>[/<path>]",
    "base_model": "hf://<org>/<repo>",
}


@dataclass(frozen=True)
class HubRef:
    """One `hf://` reference, split; `revision` and `path` are None when absent."""

    kind: Kind
    repo: str  # "<org>/<name>"
    revision: str | None
    path: str | None  # inside the repository, without the leading '/'

    @property
    def repo_uri(self) -> str:
        """hf://datasets/acme/transcripts: the repository, with no revision or path."""
        return f"hf://{_PREFIX[self.kind]}{self.repo}"

    @property
    def web_url(self) -> str:
        """The repository on the Hub; also its git remote (`git ls-remote` reads it)."""
        return f"https://huggingface.co/{_PREFIX[self.kind]}{self.repo}"

    def pinned(self, commit: str) -> str:
        """The same reference at `commit`: what a fix should read."""
        return f"{self.repo_uri}@{commit}" + (f"/{self.path}" if self.path else "")


def parse(uri: str) -> HubRef:
    """Split an hf:// reference; any revision text is kept (checking it is `reference_problem`'s job).

    >>> parse("hf://meta-llama/Llama-Guard-3-1B@main/model.safetensors")
    HubRef(kind='model', repo='meta-llama/Llama-Guard-3-1B', revision='main', path='model.safetensors')
    """
    match = _SHAPE.fullmatch(uri)
    if match is None:
        raise ValueError(f"`{uri}` names no repository: write hf://<org>/<repo>@<commit>/<file> "
                         "(an organisation and a repository name; models that once had none now "
                         "live under one, e.g. openai-community/gpt2)")
    org, name, path = match["org"], match["name"], match["path"]
    if match["revision"] is None and path and "@" in path:
        raise ValueError(f"`{uri}` has more than <org>/<repo> before its `@`: write "
                         "hf://<org>/<repo>@<commit>/<file>, or hf://datasets/<org>/<name>@<commit> for a dataset")
    for part, what in ((org, "organisation"), (name, "repository name")):
        if not _NAME.fullmatch(part):
            raise ValueError(f"`{uri}`: {what} `{part}` is not a Hub name: use at most 96 letters, digits, "
                             "'_', '-' and '.', starting and ending with a letter, digit or '_', "
                             "with no '--' or '..'")
    kind: Kind = "dataset" if match["prefix"] == "datasets" else "space" if match["prefix"] == "spaces" else "model"
    return HubRef(kind, f"{org}/{name}", match["revision"], path[1:] if path else None)


def reference_problem(uri: str, role: Role) -> str | None:
    """What is wrong with `uri` for `role`, with the fix; None when it is pinned as the role needs.

    Roles: "artifact" (a bundle file: model repository, full commit, a file), "dataset" (a dataset
    repository at a full commit, path optional), "base_model" (a model repository, no path; a
    commit, when given, must be full: `revision` carries it otherwise).
    """
    try:
        ref = parse(uri)
    except ValueError as err:
        return str(err)
    wanted: Kind = "dataset" if role == "dataset" else "model"
    if ref.kind != wanted:
        return _kind_problem(uri, ref, role)
    if ref.revision is not None or role != "base_model":
        problem = revision_problem(ref, ref.revision, f"`{uri}` pins", ref.pinned("<commit>"))
        if problem:
            return problem
    return _path_problem(uri, ref, role)


def revision_problem(ref: HubRef, revision: str | None, subject: str, example: str | None = None) -> str | None:
    """Why `revision` of `ref` is not a full lowercase commit, and how to get one; None when it is.

    `subject` starts the sentence ("`hf://...@main/x` pins", "revision is"), so the message says
    what was found: a branch `main`, a tag `v1.0`, a short hash `7327bd9`, no revision. `example`
    is the reference as the fix should read it.
    """
    if revision is not None and _COMMIT.fullmatch(revision):
        return None
    if revision is not None and _ANY_CASE_COMMIT.fullmatch(revision):
        lower = revision.lower()
        return f"{subject} the commit `{revision}` in uppercase: write it in lowercase, `{lower}`"
    if revision is None or revision == "":
        found, how = "no revision", _ls_remote_branch(ref, "main")
    elif _SHORT_HASH.fullmatch(revision):
        found = f"a short hash `{revision}`"
        how = (f"`git ls-remote {ref.web_url}` lists every branch and tag with its full commit: "
               f"take the one that starts with `{revision}`")
    elif _TAG.fullmatch(revision):
        found = f"a tag `{revision}`, which can move"
        how = (f"`git ls-remote {ref.web_url} 'refs/tags/{revision}*'` prints it (the `^{{}}` line of an "
               f"annotated tag), as does {_hf_api(ref, revision)}")
    else:
        found, how = f"a branch `{revision}`, which can move", _ls_remote_branch(ref, revision)
    pin = f"pin the full 40-hex commit, {example}" if example else "write the full 40-hex commit"
    return f"{subject} {found}: {pin}; {how}"


def base_model_revision_problem(source: str | None, revision: str) -> str | None:
    """A base model from the Hub needs `revision` to be its full commit, equal to any `@` in `source`.

    Other sources (s3://, gs://, https://) keep whatever revision their owner uses.
    """
    if source is None or not source.startswith("hf://"):
        return None
    try:
        ref = parse(source)
    except ValueError:
        return None  # `source` itself is reported
    problem = revision_problem(ref, revision, "revision is")
    if problem:
        return problem
    if ref.revision is not None and ref.revision != revision:
        return (f"revision `{revision}` is not the commit `source` pins (`{ref.revision}`): make them "
                f"the same commit, or write source: {ref.repo_uri} and keep the commit in `revision`")
    return None


def hub_base_model(uri: str) -> dict[str, str]:
    """A base model's lineage from its Hub reference: repository name, repository URI and commit.

    >>> hub_base_model("hf://Qwen/Qwen2.5-Coder-7B@0396a76181e127dfc13e5c5ec48a8cee09938b02")["source"]
    'hf://Qwen/Qwen2.5-Coder-7B'

    Raises ValueError, with the fix, for anything but `hf://<org>/<repo>@<40-hex commit>`.
    """
    if not uri.startswith("hf://"):
        raise ValueError(f"`{uri}` is not a Hub reference: write hf://<org>/<repo>@<40-hex commit>")
    problem = reference_problem(uri, "base_model")
    if problem:
        raise ValueError(problem)
    ref = parse(uri)
    if ref.revision is None:
        raise ValueError(revision_problem(ref, None, f"`{uri}` pins", ref.pinned("<commit>")))
    return {"name": ref.repo, "source": ref.repo_uri, "revision": ref.revision}


def _kind_problem(uri: str, ref: HubRef, role: Role) -> str:
    kind = {"dataset": "a dataset", "space": "a Space (an app)", "model": "a model repository"}[ref.kind]
    if role == "dataset":
        return (f"`{uri}` names {kind}: a dataset on the Hub is hf://datasets/<org>/<name>@<commit>, "
                f"e.g. hf://datasets/{ref.repo}@<commit>")
    if role == "base_model":
        return f"`{uri}` names {kind}, not a model: write {SHAPES['base_model']}"
    return (f"`{uri}` names {kind}: the init container fetches files of model repositories only "
            f"({SHAPES['artifact']}); copy the file to a model repository or to s3://")


def _path_problem(uri: str, ref: HubRef, role: Role) -> str | None:
    path = ref.path
    if role == "base_model":
        if path is None:
            return None
        return (f"`{uri}` names a file or folder, but `source` names the repository: write "
                f"source: {ref.repo_uri} and put the commit in `revision`")
    if path is None or (path == "" and role == "artifact"):
        if role == "dataset":
            return None
        at = ref.pinned(ref.revision or "<commit>").rstrip("/")
        return (f"`{uri}` names no file: a bundle artifact is one file of the repository, write "
                f"{at}/<file>, e.g. {at}/model.safetensors")
    if re.search(r"\s", path):
        return f"`{uri}` has whitespace in its path: artifact URIs cannot hold it; rename the file"
    segments = path.split("/")
    if role == "dataset" and segments[-1] == "":
        segments.pop()  # a trailing '/' names a folder, which a dataset may be
    if role == "artifact" and segments[-1] == "":
        return f"`{uri}` ends with '/', a folder: a bundle artifact names one file of the repository"
    if any(s in ("", ".", "..") for s in segments):
        return (f"`{uri}` has an empty, '.' or '..' segment in its path: write the path as the "
                "repository lists it, e.g. onnx/model.onnx")
    return None


def _ls_remote_branch(ref: HubRef, branch: str) -> str:
    return f"`git ls-remote {ref.web_url} refs/heads/{branch}` prints it, as does {_hf_api(ref, branch)}"


def _hf_api(ref: HubRef, revision: str) -> str:
    info = {"model": "model_info", "dataset": "dataset_info", "space": "space_info"}[ref.kind]
    return f'`huggingface_hub.HfApi().{info}("{ref.repo}", revision="{revision}").sha`'
