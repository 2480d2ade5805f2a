"""`reconciler validate` on unpinned Hugging Face references, in a copy of the example repository.

The Hub is never contacted: the rules read the reference text, as the release author's CI would.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import ROOT
from .test_cli import FINDING_LINE, run

CLASSIFIER = "releases/chat-assistant/1.3.0.yaml"
BASE = "releases/chat-assistant/1.2.0.yaml"
GUARD = "meta-llama/Llama-Guard-3-1B"
GUARD_COMMIT = "7327bd9f6efbbe6101dc6cc4736302b3cbb6e425"
LLAMA = "meta-llama/Llama-3.1-70B-Instruct"
LLAMA_COMMIT = "1605565b47bb9346c5515c34102e054115b4f98b"


def edit(repo: Path, file: str, old: str, new: str) -> int:
    """Replace `old` (once) in `file`; return the 1-based line of the edit, as validate should report it."""
    text = (repo / file).read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} should occur once in {file}"
    (repo / file).write_text(text.replace(old, new), encoding="utf-8")
    return text[: text.index(old)].count("\n") + 1


def unpin(repo: Path) -> dict[str, int]:
    """The classifier on `@main`, the base model on the tag `v1.0`: file -> line of each edit."""
    return {
        CLASSIFIER: edit(repo, CLASSIFIER, f"{GUARD}@{GUARD_COMMIT}/", f"{GUARD}@main/"),
        BASE: edit(repo, BASE, f"revision: {LLAMA_COMMIT}", "revision: v1.0"),
    }


def test_the_example_pins_every_hub_reference(capsys: pytest.CaptureFixture[str], example_repo: Path) -> None:
    text = (example_repo / CLASSIFIER).read_text(encoding="utf-8")
    assert f"hf://{GUARD}@{GUARD_COMMIT}/model.safetensors" in text and f"revision: {LLAMA_COMMIT}" in text
    assert run(capsys, "validate", str(example_repo))[0] == 0


def test_validate_names_file_line_path_and_fix(capsys: pytest.CaptureFixture[str], example_repo: Path) -> None:
    lines = unpin(example_repo)
    code, out, err = run(capsys, "validate", str(example_repo))
    assert code == 1 and err == ""
    *findings, summary = out.strip().splitlines()
    assert summary == "FAILED: 7 files checked, 2 errors, 0 warnings"
    found = {m["file"]: m for m in map(FINDING_LINE.match, findings) if m}
    assert len(found) == 2, findings

    classifier = found[CLASSIFIER]
    assert (int(classifier["line"]), classifier["path"], classifier["severity"]) == (
        lines[CLASSIFIER], "bundle.safety.classifier.uri", "error")
    assert f"`hf://{GUARD}@main/model.safetensors` pins a branch `main`, which can move" in classifier["message"]
    assert f"pin the full 40-hex commit, hf://{GUARD}@<commit>/model.safetensors" in classifier["message"]
    assert f"`git ls-remote https://huggingface.co/{GUARD} refs/heads/main`" in classifier["message"]
    assert f'`huggingface_hub.HfApi().model_info("{GUARD}", revision="main").sha`' in classifier["message"]

    base = found[BASE]
    assert (int(base["line"]), base["path"]) == (lines[BASE], "lineage.base_model.revision")
    assert "revision is a tag `v1.0`, which can move: write the full 40-hex commit" in base["message"]
    assert f"`git ls-remote https://huggingface.co/{LLAMA} 'refs/tags/v1.0*'`" in base["message"]


def test_validate_json_carries_the_same_findings(capsys: pytest.CaptureFixture[str], example_repo: Path) -> None:
    lines = unpin(example_repo)
    code, out, _ = run(capsys, "validate", str(example_repo), "--format", "json")
    assert code == 1
    report = json.loads(out)
    assert report["ok"] is False
    assert sorted((e["file"], e["line"], e["path"]) for e in report["errors"]) == [
        (BASE, lines[BASE], "lineage.base_model.revision"),
        (CLASSIFIER, lines[CLASSIFIER], "bundle.safety.classifier.uri"),
    ]
    assert all("git ls-remote https://huggingface.co/" in e["message"] for e in report["errors"])


def test_python_m_reconciler_validate_exits_1(example_repo: Path) -> None:
    unpin(example_repo)
    child = subprocess.run([sys.executable, "-m", "reconciler", "validate", str(example_repo)],
                           capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert child.returncode == 1, child.stderr
    assert f"{CLASSIFIER}:" in child.stdout and "bundle.safety.classifier.uri" in child.stdout
    assert f"{BASE}:" in child.stdout and "lineage.base_model.revision" in child.stdout


@pytest.mark.parametrize(("old", "new", "path", "message"), [
    (f"{GUARD}@{GUARD_COMMIT}/", f"{GUARD}@{GUARD_COMMIT[:7]}/", "bundle.safety.classifier.uri",
     f"pins a short hash `{GUARD_COMMIT[:7]}`"),
    (f"{GUARD}@{GUARD_COMMIT}/model.safetensors", f"{GUARD}@{GUARD_COMMIT}", "bundle.safety.classifier.uri",
     "names no file"),
    (f"source: hf://{LLAMA}", f"source: hf://{LLAMA}@main", "lineage.base_model.source", "pins a branch `main`"),
    (f"source: hf://{LLAMA}", f"source: hf://{LLAMA}@{GUARD_COMMIT}", "lineage.base_model.revision",
     f"is not the commit `source` pins (`{GUARD_COMMIT}`)"),
    ("uri: s3://acme-llm-datasets/support-transcripts/2026-q4-early/",
     "uri: hf://datasets/acme/support-transcripts@2026-q4-early", "lineage.dataset.uri",
     "pins a tag `2026-q4-early`"),
    ("uri: s3://acme-llm-datasets/support-transcripts/2026-q4-early/",
     f"uri: hf://acme/support-transcripts@{GUARD_COMMIT}", "lineage.dataset.uri",
     "a dataset on the Hub is hf://datasets/"),
], ids=["short hash", "no file", "source on a branch", "source and revision differ", "dataset on a tag",
        "dataset without datasets/"])
def test_each_unpinned_shape_is_one_finding_at_its_line(capsys: pytest.CaptureFixture[str], example_repo: Path,
                                                       old: str, new: str, path: str, message: str) -> None:
    line = edit(example_repo, CLASSIFIER, old, new)
    code, out, _ = run(capsys, "validate", str(example_repo), "--format", "json")
    assert code == 1
    (error,) = json.loads(out)["errors"]
    assert (error["file"], error["path"]) == (CLASSIFIER, path)
    assert error["line"] == (line + 1 if path.endswith("revision") else line)  # revision is the next line
    assert message in error["message"]


def test_a_pinned_hub_dataset_and_repinned_classifier_pass(capsys: pytest.CaptureFixture[str],
                                                           example_repo: Path) -> None:
    commit = "0" * 40
    edit(example_repo, CLASSIFIER, f"{GUARD}@{GUARD_COMMIT}/", f"{GUARD}@{commit}/")
    edit(example_repo, CLASSIFIER, "uri: s3://acme-llm-datasets/support-transcripts/2026-q4-early/",
         f"uri: hf://datasets/acme/support-transcripts@{commit}/2026-q4-early/")
    edit(example_repo, BASE, f"source: hf://{LLAMA}", f"source: hf://{LLAMA}@{LLAMA_COMMIT}")
    code, out, _ = run(capsys, "validate", str(example_repo))
    assert (code, out.strip()) == (0, "ok: 7 files checked, 0 errors, 0 warnings")


def test_docs_show_what_validate_prints(capsys: pytest.CaptureFixture[str], example_repo: Path) -> None:
    """docs/huggingface.md quotes validate on the classifier at `@main` and the base model at `v1.0`."""
    doc = (ROOT / "docs" / "huggingface.md").read_text(encoding="utf-8")
    block = doc.split("$ reconciler validate\n", 1)[1].split("```", 1)[0]
    edit(example_repo, CLASSIFIER, f"{GUARD}@{GUARD_COMMIT}/", f"{GUARD}@main/")
    edit(example_repo, CLASSIFIER, f"revision: {LLAMA_COMMIT}", "revision: v1.0")
    code, out, _ = run(capsys, "validate", str(example_repo))
    assert code == 1
    assert out.strip().splitlines() == block.strip().splitlines()
