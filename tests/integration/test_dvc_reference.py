"""DVC references on a real DVC repository: `dvc init`, `dvc add`, `dvc push` to a local remote.

The repository is built once for the module (dvc takes about half a second to start): a git work
tree with a DVC 3 cache, a default remote `store` on s3:// (never contacted: the import only reads
its URL), a local remote `backup` that really receives `dvc push`, a gs:// remote defined only in
`.dvc/config.local`, and remotes the init container cannot fetch. DVC runs with no user or system
configuration and no analytics. Hand-edited `.dvc` files are derived from the one `dvc add` wrote
and removed after each test, so `dvc pull` never sees them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from reconciler.adapters.dvc_reference import DvcReferenceError, read_dvc_reference
from reconciler.core.release import Artifact

from ..dvc_kit import add_remote_in_config, dvc, isolated_dvc, new_dvc_repo, set_default_remote

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git executable")

WEIGHTS = "models/model.tar"
STORE = "s3://acme-dvc/store"
MIRROR = "gs://acme-mirror/dvc"
WEB = "https://dvc.acme.example/store"
UNFETCHABLE = {"box": "ssh://box.acme.example/dvc", "blob": "azure://models/dvc",
               "plain": "http://dvc.acme.example/store"}


@dataclass(frozen=True)
class World:
    root: Path  # the DVC repository
    backup: Path  # the local remote `dvc push -r backup` wrote to
    bare: Path  # a second DVC repository with no remote at all
    weights: bytes

    @property
    def dvc_file(self) -> Path:
        return self.root / f"{WEIGHTS}.dvc"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("dvc")
    with isolated_dvc(base):
        weights = os.urandom(1024 * 1024 + 3)
        root, backup = base / "repo", base / "backup"
        new_dvc_repo(root, {WEIGHTS: weights, "models/victim.bin": os.urandom(4096),
                            "models/tokenizer/tokenizer.json": b'{"vocab": {}}',
                            "models/tokenizer/merges.txt": b"a b\n"},
                     [WEIGHTS, "models/victim.bin", "models/tokenizer"])
        dvc(root, "remote", "add", "-d", "store", STORE)
        add_remote_in_config(root, "backup", str(backup))
        add_remote_in_config(root, "mirror", MIRROR, level="local")
        add_remote_in_config(root, "web", WEB)
        add_remote_in_config(root, "worktree", "s3://acme-dvc/worktree", worktree=True)
        for name, url in UNFETCHABLE.items():
            add_remote_in_config(root, name, url)
        dvc(root, "push", "-q", "-r", "backup")
        bare = base / "bare"
        new_dvc_repo(bare, {"model.bin": b"weights without a remote"}, ["model.bin"])
        yield World(root=root, backup=backup, bare=bare, weights=weights)


@pytest.fixture
def variant(world: World) -> Iterator[Callable[[Callable[[str], str]], Path]]:
    """Write a .dvc file next to the real one, edited from its text; removed after the test."""
    made: list[Path] = []

    def make(edit: Callable[[str], str]) -> Path:
        path = world.root / "models" / f"variant-{len(made)}.dvc"
        path.write_text(edit(world.dvc_file.read_text()))
        made.append(path)
        return path

    yield make
    for path in made:
        path.unlink()


def record(dvc_file: Path) -> dict:
    [out] = YAML(typ="safe").load(dvc_file.read_text())["outs"]
    return out


def refusal(dvc_file: Path, remote: str | None = None) -> str:
    with pytest.raises(DvcReferenceError) as caught:
        read_dvc_reference(dvc_file, remote)
    message = str(caught.value)
    assert message.startswith(str(dvc_file)) and "; fix: " in message  # names the file and the fix
    return message


# --------------------------------------------------------------------------- what a reference pins


def test_reference_pins_the_object_dvc_pushed(world: World) -> None:
    ref = read_dvc_reference(world.dvc_file)
    out = record(world.dvc_file)
    assert (ref.md5, ref.size_bytes) == (out["md5"], out["size"]) == (
        hashlib.md5(world.weights).hexdigest(), len(world.weights))
    assert ref.sha256 == hashlib.sha256(world.weights).hexdigest()
    assert (ref.dvc_file, ref.path, ref.remote) == (str(world.dvc_file), WEIGHTS, "store")
    # The layout claim: `dvc push` stored the object under the same relative path the URI names.
    [pushed] = [p for p in world.backup.rglob("*") if p.is_file() and p.read_bytes() == world.weights]
    relative = pushed.relative_to(world.backup).as_posix()
    assert relative == f"files/md5/{ref.md5[:2]}/{ref.md5[2:]}"
    assert ref.uri == f"{STORE}/{relative}"


def test_artifact_is_a_valid_bundle_slot(world: World) -> None:
    ref = read_dvc_reference(world.dvc_file)
    artifact = Artifact.model_validate(ref.artifact())
    assert artifact.model_dump() == {"uri": ref.uri, "sha256": ref.sha256, "md5": ref.md5,
                                     "size_bytes": len(world.weights)}


@pytest.mark.parametrize(("remote", "url"), [("mirror", MIRROR), ("web", WEB), ("store", STORE)])
def test_a_named_remote_gives_its_url(world: World, remote: str, url: str) -> None:
    """`mirror` exists only in .dvc/config.local: DVC's own config reader merges it."""
    assert "mirror" not in (world.root / ".dvc/config").read_text()
    ref = read_dvc_reference(world.dvc_file, remote)
    assert ref.remote == remote
    assert ref.uri == f"{url}/files/md5/{ref.md5[:2]}/{ref.md5[2:]}"


def test_an_outputs_own_remote_is_used_unless_one_is_named(world: World, variant: Callable) -> None:
    dvc_file = variant(lambda text: text.replace("  path: model.tar", "  path: model.tar\n  remote: web"))
    assert read_dvc_reference(dvc_file).uri.startswith(f"{WEB}/files/md5/")
    assert read_dvc_reference(dvc_file, "mirror").uri.startswith(f"{MIRROR}/files/md5/")


def test_a_relative_path_to_the_dvc_file_works_from_another_directory(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(world.root / "models")
    ref = read_dvc_reference(Path("model.tar.dvc"))
    assert (ref.dvc_file, ref.path) == ("model.tar.dvc", WEIGHTS)
    assert ref == replace(read_dvc_reference(world.dvc_file), dvc_file="model.tar.dvc")


# --------------------------------------------------------------------------- the local cache


def test_missing_cache_says_dvc_pull_and_pull_restores_the_same_reference(world: World) -> None:
    before = read_dvc_reference(world.dvc_file)
    shutil.rmtree(world.root / ".dvc/cache")
    message = refusal(world.dvc_file)
    assert f"the bytes of {WEIGHTS} (md5 {before.md5}) are not in the local DVC cache" in message
    assert f"fix: fetch them first: `dvc pull {WEIGHTS}` in {world.root}" in message
    # `dvc pull`'s checkout builds the default remote's storage even with -r, and s3:// needs the
    # dvc-s3 plugin, which is not installed here: make `backup` the default while pulling.
    set_default_remote(world.root, "backup")
    try:
        dvc(world.root, "pull", "-q", "-r", "backup")  # everything: other tests read the cache too
    finally:
        set_default_remote(world.root, "store")
    assert read_dvc_reference(world.dvc_file) == before


def test_damaged_cache_is_refused_with_both_digests(world: World) -> None:
    dvc_file = world.root / "models/victim.bin.dvc"
    recorded = record(dvc_file)["md5"]
    cached = world.root / ".dvc/cache/files/md5" / recorded[:2] / recorded[2:]
    original = cached.read_bytes()
    cached.chmod(0o644)  # DVC makes cache files read-only
    cached.write_bytes(bytes(len(original)))
    try:
        message = refusal(dvc_file)
    finally:
        cached.write_bytes(original)
    assert f"have md5 {hashlib.md5(bytes(len(original))).hexdigest()}, not the recorded {recorded}" in message
    assert "`dvc status`" in message and "outs[0].md5" in message and f"{dvc_file}:2:" in message
    assert read_dvc_reference(dvc_file).md5 == recorded


# --------------------------------------------------------------------------- refusals


def test_a_directory_output_asks_for_an_archive(world: World) -> None:
    message = refusal(world.root / "models/tokenizer.dvc")
    assert "'tokenizer' is a directory" in message and ".dir" in message
    assert (f"track one archive of it instead: in {world.root / 'models'}, `tar -cf tokenizer.tar "
            "tokenizer` then `dvc add tokenizer.tar`") in message


def test_a_dvc2_entry_asks_for_the_migration(world: World, variant: Callable) -> None:
    dvc_file = variant(lambda text: text.replace("  hash: md5\n", ""))
    message = refusal(dvc_file)
    assert f"{dvc_file}:2: outs[0]: records no `hash: md5`, so it is a DVC 2 entry" in message
    assert "`dvc cache migrate --dvc-files`" in message
    assert "--dvc-files" in dvc(world.root, "cache", "migrate", "--help")  # the fix exists in this DVC


@pytest.mark.parametrize(("edit", "problem"), [
    (lambda t: t + t.split("outs:\n")[1].replace("model.tar", "victim.bin"), "has 2 outputs"),
    (lambda t: "outs: []\n", "has 0 outputs"),
    (lambda t: "deps: []\n", "has no `outs` list"),
    (lambda t: t.replace("- md5:", "- size_in_md5:"), "outs[0].md5: is missing"),
    (lambda t: t.replace("hash: md5", "hash: md5\n  push: false"), "outs[0].push: is false"),
    (lambda t: t.replace("hash: md5", "hash: md5\n  cache: false"), "outs[0].cache: is false"),
    (lambda t: t.replace("size: ", "size: 1"), "outs[0].size: records size 1"),
    (lambda t: t.replace("outs:", "outs: ["), "YAML syntax error"),
    (lambda t: t.replace("path: model.tar", "path: ../../model.tar"), "is outside the DVC repository"),
])
def test_a_bad_record_is_refused(world: World, variant: Callable, edit: Callable[[str], str],
                                 problem: str) -> None:
    assert problem in refusal(variant(edit))


def test_no_default_remote_and_none_named(world: World) -> None:
    message = refusal(world.bare / "model.bin.dvc")
    assert "has no default remote (known: none)" in message
    assert "--dvc-remote NAME, or set a default: `dvc remote default NAME`" in message


def test_an_unknown_remote_lists_the_known(world: World, variant: Callable) -> None:
    known = "(known: backup, blob, box, mirror, plain, store, web, worktree)"
    message = refusal(world.dvc_file, "nope")
    assert f"remote 'nope' was asked for but is not configured in {world.root} {known}" in message
    assert "fix: name a known remote, or add it: `dvc remote add NAME URL`" in message
    own = variant(lambda text: text.replace("  path: model.tar", "  path: model.tar\n  remote: gone"))
    assert f"remote 'gone' is the output's `remote:` but is not configured in {world.root} {known}" in refusal(own)


@pytest.mark.parametrize("remote", ["backup", *UNFETCHABLE])
def test_a_remote_the_pod_cannot_fetch_is_refused(world: World, remote: str) -> None:
    message = refusal(world.dvc_file, remote)
    if remote == "backup":
        assert f"remote 'backup' is a local path ({world.backup}), which pods cannot read" in message
    else:
        url = UNFETCHABLE[remote]
        assert f"remote {remote!r} is {url}, and pods cannot fetch {url.split(':')[0]}:// URLs" in message
    assert "the init container fetches only s3://, gs://, https://; fix: push to a remote" in message


def test_a_worktree_remote_is_refused(world: World) -> None:
    assert "is a worktree remote" in refusal(world.dvc_file, "worktree")


@pytest.mark.parametrize(("name", "problem", "fix"), [
    ("models/model.tar", "is not a .dvc file", "give its .dvc file: {root}/models/model.tar.dvc"),
    ("models/absent.tar.dvc", "no such file", "give the path of the .dvc file"),
    ("dvc.yaml", "is a pipeline file (dvc.yaml)", "dvc add <file>"),
    ("dvc.lock", "is a pipeline file (dvc.lock)", "dvc add <file>"),
])
def test_not_a_dvc_file(world: World, name: str, problem: str, fix: str) -> None:
    message = refusal(world.root / name)
    assert problem in message and fix.format(root=world.root) in message


def test_a_dvc_file_outside_a_dvc_repository(world: World, tmp_path: Path) -> None:
    outside = tmp_path / "model.tar.dvc"
    shutil.copyfile(world.dvc_file, outside)
    assert "is not inside a DVC repository" in refusal(outside)
