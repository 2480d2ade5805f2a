"""`reconciler render --environment ENV [--out DIR] [PATH]`: the manifests of an environment as YAML,
on stdout or as a directory that `kubectl apply -f` and Argo CD read; exit codes as `validate`."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from reconciler.adapters.deployable import load_desired_state
from reconciler.cli.main import main

from ..conftest import ROOT, mutate_yaml

PROD = "environments/prod.yaml"
STAGING = "environments/staging.yaml"
MARKER = ".sluice-render"
HEADER = re.compile(r"^# Rendered by `reconciler render --environment (\w+)`")
POOL_NOTE = "reconciler render: GPU node pools (a100, a10g) are AWS resources; the Pulumi program manages them"
KINDS = {"Namespace", "ConfigMap", "Deployment", "Service", "PodDisruptionBudget", "DestinationRule", "VirtualService"}
STACK_FILES = ("1-configmap-{s}-release.yaml", "1-configmap-{s}-runtime.yaml", "2-service-{s}.yaml",
               "3-deployment-{s}.yaml", "4-poddisruptionbudget-{s}.yaml")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def load_all(text: str) -> list[dict[str, Any]]:
    return [doc for doc in YAML(typ="safe").load_all(text) if doc is not None]


def files(directory: Path) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(directory.iterdir())}


def stack_files(stack: str) -> set[str]:
    return {f.format(s=stack) for f in STACK_FILES}


# --- help ---------------------------------------------------------------------------------------------


def test_help_lists_render(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    assert re.search(r"^  render\s+\S", out, re.MULTILINE)
    code, out, _ = run(capsys, "render", "--help")
    assert code == 0
    assert "usage: reconciler render" in out and "--environment" in out and "--out" in out


def test_render_without_environment_is_a_usage_error(capsys: pytest.CaptureFixture[str], example_repo: Path) -> None:
    code, out, err = run(capsys, "render", str(example_repo))
    assert (code, out) == (2, "")
    assert "--environment" in err


# --- stdout -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("environment", ["staging", "prod"])
def test_stdout_is_one_yaml_stream_of_every_object(capsys: pytest.CaptureFixture[str], example_repo: Path,
                                                   environment: str) -> None:
    code, out, err = run(capsys, "render", "--environment", environment, str(example_repo))
    assert code == 0
    assert HEADER.match(out) and HEADER.match(out).group(1) == environment  # type: ignore[union-attr]
    assert out.splitlines()[1] == "---"
    docs = load_all(out)
    state = load_desired_state(example_repo, environment)
    assert len(docs) == len(state.manifests()) == {"staging": 34, "prod": 26}[environment]  # staging: 3 evaluator
    assert docs[0] == {"apiVersion": "v1", "kind": "Namespace",
                       "metadata": {"name": "llm-serving", "labels": {"istio-injection": "enabled",
                                                                       "app.kubernetes.io/managed-by": "sluice"}}}
    assert {d["kind"] for d in docs} == KINDS
    assert docs == state.manifests()
    assert err.strip() == POOL_NOTE  # stdout stays pure YAML for `| kubectl apply -f -`


def test_render_defaults_to_the_current_directory(capsys: pytest.CaptureFixture[str], example_repo: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(example_repo)
    code, out, _ = run(capsys, "render", "-e", "staging")
    assert code == 0
    assert len(load_all(out)) == 34


def test_python_dash_m_reconciler_render_pipes_yaml_only(example_repo: Path) -> None:
    child = subprocess.run([sys.executable, "-m", "reconciler", "render", "--environment", "staging", str(example_repo)],
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    assert load_all(child.stdout) == load_desired_state(example_repo, "staging").manifests()
    assert child.stderr.strip() == POOL_NOTE


def test_a_reader_that_stops_early_gets_no_traceback(example_repo: Path) -> None:
    """`reconciler render -e staging | head -1`: the closed pipe ends the command quietly, as cat does."""
    child = subprocess.Popen([sys.executable, "-m", "reconciler", "render", "--environment", "staging",
                              str(example_repo)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()  # the reader is gone before the first line
    err = child.stderr.read()
    assert child.wait(timeout=120) == 0
    assert "Traceback" not in err and "Broken pipe" not in err and "BrokenPipeError" not in err, err


# --- --out DIR ----------------------------------------------------------------------------------------


def test_out_writes_one_file_per_object_and_the_marker(capsys: pytest.CaptureFixture[str], example_repo: Path,
                                                       tmp_path: Path) -> None:
    out_dir = tmp_path / "deploy" / "staging"  # parents do not exist yet
    code, out, err = run(capsys, "render", "--environment", "staging", "--out", str(out_dir), str(example_repo))
    assert code == 0
    assert out.strip() == f"reconciler render: wrote 34 manifests for staging to {out_dir}"
    assert err.strip() == POOL_NOTE
    written = files(out_dir)
    assert MARKER in written
    names = sorted(set(written) - {MARKER})
    assert len(names) == 34
    assert names[:2] == ["0-namespace-llm-serving.yaml", "1-configmap-chat-assistant-evaluator.yaml"]
    assert names[-4:] == ["5-destinationrule-chat-assistant.yaml", "5-destinationrule-code-completion.yaml",
                          "6-virtualservice-chat-assistant.yaml", "6-virtualservice-code-completion.yaml"]
    for stack in ("chat-assistant-v1-2-0", "chat-assistant-v1-3-0", "code-completion-v2-0-0", "code-completion-v2-1-0"):
        assert stack_files(stack) <= set(names), stack
    assert {"1-configmap-sluice-bundle-fetcher.yaml", "2-service-chat-assistant.yaml",
            "2-service-code-completion.yaml"} <= set(names)
    assert {"1-configmap-chat-assistant-evaluator.yaml", "3-deployment-chat-assistant-evaluator.yaml",
            "2-service-chat-assistant-evaluator.yaml"} <= set(names)  # the online evaluator beside the 1% canary

    by_name = {}
    for name in names:
        assert HEADER.match(written[name]), name
        [doc] = load_all(written[name])
        by_name[name] = doc
    state = load_desired_state(example_repo, "staging")
    assert sorted(by_name.values(), key=lambda d: (d["kind"], d["metadata"]["name"])) == sorted(
        state.manifests(), key=lambda d: (d["kind"], d["metadata"]["name"]))
    assert by_name["3-deployment-chat-assistant-v1-3-0.yaml"]["metadata"]["name"] == "chat-assistant-v1-3-0"


def test_out_is_deterministic(capsys: pytest.CaptureFixture[str], example_repo: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for out_dir in (first, second, first):  # into a new directory, another, and over a previous render
        assert run(capsys, "render", "-e", "prod", "--out", str(out_dir), str(example_repo))[0] == 0
    assert files(first) == files(second)
    assert len(files(first)) == 26 + 1


def test_out_into_an_existing_empty_directory(capsys: pytest.CaptureFixture[str], example_repo: Path,
                                              tmp_path: Path) -> None:
    out_dir = tmp_path / "empty"
    out_dir.mkdir()
    assert run(capsys, "render", "-e", "prod", "--out", str(out_dir), str(example_repo))[0] == 0
    assert len(list(out_dir.glob("*.yaml"))) == 26 and (out_dir / MARKER).exists()


def test_rerender_after_retiring_the_standby_removes_its_files(capsys: pytest.CaptureFixture[str],
                                                                example_repo: Path, tmp_path: Path) -> None:
    parent = tmp_path / "render"
    out_dir = parent / "prod"
    assert run(capsys, "render", "-e", "prod", "--out", str(out_dir), str(example_repo))[0] == 0
    before = set(files(out_dir))
    assert stack_files("chat-assistant-v1-1-0") <= before

    mutate_yaml(example_repo / PROD, lambda data: data["models"]["chat-assistant"].pop("standby"))
    code, out, err = run(capsys, "render", "-e", "prod", "--out", str(out_dir), str(example_repo))
    assert code == 0, err
    assert "wrote 21 manifests for prod" in out
    after = set(files(out_dir))
    assert after == before - stack_files("chat-assistant-v1-1-0")
    assert not any("v1-1-0" in name for name in after)
    [rule] = load_all((out_dir / "5-destinationrule-chat-assistant.yaml").read_text())
    assert [s["name"] for s in rule["spec"]["subsets"]] == ["v1-2-0"]
    [service] = load_all((out_dir / "6-virtualservice-chat-assistant.yaml").read_text())
    weighted = [r for r in service["spec"]["http"] if r["name"].endswith("-weighted")]
    assert [[d["destination"]["subset"] for d in r["route"]] for r in weighted] == [["v1-2-0"], ["v1-2-0"]]
    assert "v1.1.0" not in (out_dir / "1-configmap-chat-assistant-pointer.yaml").read_text()
    assert sorted(p.name for p in parent.iterdir()) == ["prod"]  # no staging or retired copy left behind


def test_out_refuses_a_directory_it_did_not_write(capsys: pytest.CaptureFixture[str], example_repo: Path,
                                                  tmp_path: Path) -> None:
    parent = tmp_path / "gitops"
    foreign = parent / "manifests"
    foreign.mkdir(parents=True)
    (foreign / "kustomization.yaml").write_text("resources: [app.yaml]\n")
    (foreign / "app.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: mine}\n")
    before = files(foreign)

    code, out, err = run(capsys, "render", "-e", "staging", "--out", str(foreign), str(example_repo))
    assert code == 2
    assert out == ""
    assert err.startswith("reconciler render: ")
    assert str(foreign) in err and "nothing was written" in err
    assert files(foreign) == before
    assert sorted(p.name for p in parent.iterdir()) == ["manifests"]  # no half-written copy beside it


def test_out_that_is_a_file_exits_2(capsys: pytest.CaptureFixture[str], example_repo: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "out.yaml"
    blocker.write_text("keep me\n")
    code, out, err = run(capsys, "render", "-e", "staging", "--out", str(blocker), str(example_repo))
    assert code == 2 and out == ""
    assert err.startswith("reconciler render: ")
    assert blocker.read_text() == "keep me\n"


# --- errors -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("with_out", [False, True], ids=["stdout", "out"])
def test_unknown_environment_exits_2_and_names_the_known_ones(capsys: pytest.CaptureFixture[str],
                                                              example_repo: Path, tmp_path: Path,
                                                              with_out: bool) -> None:
    out_dir = tmp_path / "out"
    code, out, err = run(capsys, "render", "--environment", "qa", *(["--out", str(out_dir)] if with_out else []),
                         str(example_repo))
    assert code == 2
    assert out == ""
    assert err.strip() == "reconciler render: no environments/qa.yaml (known: prod, staging)"
    assert not out_dir.exists()


def test_a_path_that_is_not_a_repository_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, "render", "-e", "staging", str(tmp_path))
    assert (code, out) == (2, "")
    assert err.startswith(f"reconciler render: {tmp_path}")


def overfill_staging_a100(repo: Path) -> None:
    mutate_yaml(repo / STAGING, lambda data: data["models"]["chat-assistant"].__setitem__("replicas", 9))


@pytest.mark.parametrize("out_dir", [None, "new", "previous"])
def test_a_capacity_error_exits_1_and_writes_nothing(capsys: pytest.CaptureFixture[str], example_repo: Path,
                                                     tmp_path: Path, out_dir: str | None) -> None:
    target = tmp_path / "rendered"
    if out_dir == "previous":
        assert run(capsys, "render", "-e", "staging", "--out", str(target), str(example_repo))[0] == 0
    before = files(target) if target.exists() else None
    overfill_staging_a100(example_repo)

    code, out, err = run(capsys, "render", "-e", "staging", *(["--out", str(target)] if out_dir else []),
                         str(example_repo))
    assert code == 1
    assert out == ""
    lines = err.strip().splitlines()
    [finding] = [line for line in lines if "[capacity]" in line]
    assert finding.startswith(f"{STAGING}:")
    assert ": error: " in finding
    assert "pool a100 needs 10 p4de.24xlarge nodes" in finding
    assert "chat-assistant stable 1.2.0 (9 x 4 GPUs); chat-assistant candidate 1.3.0 (9 x 4 GPUs)" in finding
    assert "but max_nodes is 3" in finding
    assert "raise max_nodes to at least 10" in finding
    assert lines[-1] == "reconciler render: 1 error(s): run `reconciler validate` and fix them first"
    assert "Pulumi program" not in err  # it stopped before rendering anything
    if before is None:
        assert not target.exists()
    else:
        assert files(target) == before  # the previous render is left exactly as it was
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["repo", *(["rendered"] if before else [])])


# --- secrets ------------------------------------------------------------------------------------------


def test_a_notification_urls_credentials_are_not_rendered(capsys: pytest.CaptureFixture[str],
                                                          example_repo: Path) -> None:
    """docs/program.md: notification URLs are redacted to their host in the release ConfigMap."""
    url = "https://sluice-bot:hunter2-pass@oncall.acme.example/hooks/sluice"
    mutate_yaml(example_repo / "releases/chat-assistant/1.3.0.yaml",
                lambda d: d["rollout"]["notify"][1].__setitem__("url", url))
    code, out, err = run(capsys, "render", "--environment", "staging", str(example_repo))
    assert code == 0, err
    assert "hunter2" not in out and "sluice-bot" not in out
    assert "https://oncall.acme.example/redacted" in out


def test_render_refuses_a_release_that_validate_refuses_for_a_secret(capsys: pytest.CaptureFixture[str],
                                                                    example_repo: Path) -> None:
    """Only `preview` (the pack's configmap-secrets) used to block this; render printed the token."""
    token = "ghp_" + "a1B2c3D4e5" * 4
    mutate_yaml(example_repo / "releases/chat-assistant/1.3.0.yaml",
                lambda d: d.__setitem__("description", f"CI token {token}"))
    code, out, err = run(capsys, "render", "--environment", "staging", str(example_repo))
    assert code == 1 and out == ""
    assert "releases/chat-assistant/1.3.0.yaml:7:1: error: description: description holds what looks like a " \
        "GitHub token (ghp_... (44 characters))" in err
    assert "[secrets]" in err and token not in err
    assert run(capsys, "validate", str(example_repo))[0] == 1
