"""What the loader reads: regular files, and links that stay inside the repository. Links that leave
it, FIFOs, sockets and directories named `*.yaml` are refused with a finding, never opened."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.adapters import repo_loader
from reconciler.adapters.files import NotARegularFile, entry_kind, open_regular_file
from reconciler.adapters.repo_loader import load_repository
from reconciler.cli.main import main

from ..conftest import ROOT

REL = "releases/chat-assistant/1.3.0.yaml"  # staging's and prod's candidate


def problems(repo: Path) -> list[tuple[str, int | None, str, str, str]]:
    return [(f.file, f.line, f.rule, f.message, f.fix) for f in load_repository(repo).findings]


def move_out(repo: Path, rel: str, outside: Path) -> Path:
    """Move `rel` out of the repository and leave a symbolic link to it in its place."""
    outside.mkdir(parents=True, exist_ok=True)
    target = outside / Path(rel).name
    shutil.move(repo / rel, target)
    os.symlink(target, repo / rel)
    return target


def test_a_release_linked_from_outside_is_refused(example_repo: Path, tmp_path: Path) -> None:
    target = move_out(example_repo, REL, tmp_path / "outside")
    # one finding: the environments that point at the release do not add "no such release"
    assert problems(example_repo) == [
        (REL, None, "file-link", f"a symbolic link to {target}, outside the repository: it is not read",
         "copy the file into the repository in place of the link, or remove the link")]


def test_a_link_in_a_parent_folder_that_leaves_the_repository_is_refused(example_repo: Path, tmp_path: Path) -> None:
    shutil.move(example_repo / "releases/code-completion", tmp_path / "elsewhere")
    os.symlink(tmp_path / "elsewhere", example_repo / "releases/code-completion")
    assert [p for p in problems(example_repo) if p[2] != "pointers"] == [
        ("releases/code-completion", None, "file-link",
         f"a symbolic link to {tmp_path / 'elsewhere'}, outside the repository: it is not read",
         "copy the files into the repository in place of the link, or remove the link")]


def test_the_releases_folder_itself_may_not_leave_the_repository(example_repo: Path, tmp_path: Path) -> None:
    shutil.move(example_repo / "releases", tmp_path / "shared-releases")
    os.symlink(tmp_path / "shared-releases", example_repo / "releases")
    assert ("releases", None, "file-link") in [p[:3] for p in problems(example_repo)]
    assert load_repository(example_repo).repository.releases == ()


def test_a_link_to_a_file_inside_the_repository_is_read(example_repo: Path) -> None:
    shared = example_repo / "shared"
    shared.mkdir()
    shutil.move(example_repo / REL, shared / "1.3.0.yaml")
    os.symlink("../../shared/1.3.0.yaml", example_repo / REL)  # relative, as git checks links out
    result = load_repository(example_repo)
    assert result.findings == []
    assert REL in [entry.file for entry in result.repository.releases]


def test_a_link_to_a_directory_inside_the_repository_is_not_followed(example_repo: Path) -> None:
    shutil.move(example_repo / "releases/code-completion", example_repo / "models")
    os.symlink("../models", example_repo / "releases/code-completion")
    assert [p for p in problems(example_repo) if p[2] != "pointers"] == [
        ("releases/code-completion", None, "file-link",
         "a symbolic link to the directory models: links to directories are not followed",
         "move the files into releases/code-completion, or remove the link")]


def test_a_dangling_link_is_refused(example_repo: Path) -> None:
    os.symlink("9.9.9.yaml", example_repo / "releases/chat-assistant/9.0.0.yaml")
    assert problems(example_repo) == [
        ("releases/chat-assistant/9.0.0.yaml", None, "file-link",
         "a symbolic link to releases/chat-assistant/9.9.9.yaml, which does not exist",
         "point the link at a file in the repository, or remove the link")]


def test_a_fifo_named_like_a_release_is_refused_without_being_opened(example_repo: Path) -> None:
    os.mkfifo(example_repo / "releases/chat-assistant/9.0.0.yaml")  # opening it to read would block
    os.mkfifo(example_repo / "environments/dev.yaml")
    assert problems(example_repo) == [
        ("environments/dev.yaml", None, "file-type", "a FIFO (named pipe), not a regular file: it is not read",
         "replace it with a regular YAML file, or remove it"),
        ("releases/chat-assistant/9.0.0.yaml", None, "file-type",
         "a FIFO (named pipe), not a regular file: it is not read", "replace it with a regular YAML file, or remove it"),
    ]


def test_a_socket_named_like_a_release_is_refused(example_repo: Path) -> None:
    path = example_repo / "releases/chat-assistant/9.0.0.yaml"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        assert problems(example_repo) == [
            ("releases/chat-assistant/9.0.0.yaml", None, "file-type", "a socket, not a regular file: it is not read",
             "replace it with a regular YAML file, or remove it")]


@pytest.mark.parametrize("folder", ["releases/chat-assistant", "environments"])
def test_a_directory_named_like_a_yaml_file_is_refused(example_repo: Path, folder: str) -> None:
    (example_repo / folder / "9.0.0.yaml").mkdir()
    (example_repo / folder / "9.0.0.yaml" / "notes.txt").write_text("not a release\n")
    assert problems(example_repo) == [
        (f"{folder}/9.0.0.yaml", None, "file-type", "a directory, not a file: it is not read",
         "rename the directory (names ending in .yaml are release and environment files), or remove it")]


def test_a_fifo_linked_from_inside_the_repository_is_refused(example_repo: Path) -> None:
    os.mkfifo(example_repo / "pipe")
    os.symlink("../../pipe", example_repo / "releases/chat-assistant/9.0.0.yaml")
    assert problems(example_repo) == [
        ("releases/chat-assistant/9.0.0.yaml", None, "file-type",
         "a FIFO (named pipe), not a regular file: it is not read", "replace it with a regular YAML file, or remove it")]


@pytest.mark.parametrize(("mode", "kind"), [
    (stat.S_IFCHR, "a character device"), (stat.S_IFBLK, "a block device"), (stat.S_IFIFO, "a FIFO (named pipe)"),
    (stat.S_IFSOCK, "a socket"), (stat.S_IFDIR, "a directory"), (stat.S_IFREG, "a regular file"),
])
def test_every_kind_of_entry_has_a_name(mode: int, kind: str) -> None:
    assert entry_kind(mode | 0o644) == kind


def test_validate_refuses_a_link_that_leaves_the_repository(example_repo: Path, tmp_path: Path) -> None:
    target = move_out(example_repo, REL, tmp_path / "outside")
    done = subprocess.run([sys.executable, "-m", "reconciler", "validate", str(example_repo)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 1
    assert (f"{REL}: error: a symbolic link to {target}, outside the repository: it is not read; "
            "fix: copy the file into the repository in place of the link, or remove the link [file-link]"
            ) in done.stdout.splitlines()


def test_validate_refuses_a_fifo_and_does_not_hang(example_repo: Path) -> None:
    os.mkfifo(example_repo / "releases/chat-assistant/9.0.0.yaml")
    done = subprocess.run([sys.executable, "-m", "reconciler", "validate", str(example_repo)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 1
    assert "releases/chat-assistant/9.0.0.yaml: error: a FIFO (named pipe), not a regular file" in done.stdout


@pytest.mark.parametrize("command", ["render", "preview"])
def test_render_and_preview_refuse_a_release_linked_from_outside(capsys: pytest.CaptureFixture[str],
                                                                  example_repo: Path, tmp_path: Path,
                                                                  command: str) -> None:
    for folder in ("infra", "policies"):  # preview runs the program and the pack from the checkout
        shutil.copytree(ROOT / folder, example_repo / folder, ignore=shutil.ignore_patterns("__pycache__"))
    target = move_out(example_repo, REL, tmp_path / "outside")
    code = main([command, "--environment", "staging", str(example_repo)])
    out, err = capsys.readouterr()
    assert (code, out) == (1, "")
    assert f"{REL}: error: a symbolic link to {target}, outside the repository" in err
    assert "[file-link]" in err


def test_the_opener_refuses_what_was_swapped_in_after_the_check(tmp_path: Path) -> None:
    """Between listing and reading, a file can be replaced: the read itself refuses a FIFO (without
    blocking) and a link, so no check-then-open race lets either through."""
    os.mkfifo(tmp_path / "pipe.yaml")
    with pytest.raises(NotARegularFile) as refused:
        open(tmp_path / "pipe.yaml", "rb", opener=open_regular_file)
    assert refused.value.kind == "a FIFO (named pipe)"
    (tmp_path / "real.yaml").write_text("a: 1\n")
    os.symlink(tmp_path / "real.yaml", tmp_path / "link.yaml")
    with pytest.raises(OSError):
        open(tmp_path / "link.yaml", "rb", opener=open_regular_file)
    with open(tmp_path / "real.yaml", "rb", opener=open_regular_file) as handle:
        assert handle.read() == b"a: 1\n"


def test_a_file_that_cannot_be_read_is_a_finding_not_a_traceback(example_repo: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(path: str, flags: int) -> int:
        if path.endswith("1.3.0.yaml"):
            raise PermissionError(13, "Permission denied")  # what a non-root reader of a 0o000 file gets
        return open_regular_file(path, flags)

    monkeypatch.setattr(repo_loader, "open_regular_file", denied)
    assert problems(example_repo) == [
        (REL, None, "yaml", "cannot be read: Permission denied", "make the file readable, or remove it")]
