"""`reconciler release import MODEL --mlflow models:/<name>/<version>` against a real MLflow server.

Each test logs a run with a few small files to the session's tracking server, registers it, and
imports it into a copy of the example repository in-process. The written release is then checked
by what matters to its users: it validates, each value is MLflow's (the sha256 is of the bytes
the server stores, the URI names where they are), and what MLflow could not supply is marked.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import pytest

from reconciler.adapters.repo_loader import load_repository
from reconciler.cli.main import main

from ..conftest import copy_example, load_yaml
from ..mlflow_kit import MlflowServer

COMMIT = "9c1e5d3a7b2f4e6a8c0d1e2f3a4b5c6d7e8f9a0b"
BASE = "hf://meta-llama/Llama-3.1-70B-Instruct@1605565b47bb9346c5515c34102e054115b4f98b"
DESTINATION = "s3://acme-mlflow/artifacts"
WEIGHTS = b"safetensors weights of 1.4.0\n" * 40
FILES = {"model.safetensors": WEIGHTS, "tokenizer.json": b'{"version": "1.0"}\n',
         "system_prompt.txt": b"You are Acme's support assistant. Track orders with the tool.\n"}
PARAMS = {"learning_rate": "2e-5", "lora_rank": 64, "method": "lora", "packing": "True"}
METRICS = {"toxicity": 0.012, "win_rate_vs_current": 0.58, "latency_p99_ms": 1790.0, "adversarial_pass_rate": 0.99,
           "benchmark.mt_bench": 8.61, "train_loss": 0.91}
DATASET_TAGS = {"dataset.name": "support-transcripts", "dataset.version": "2026-q4",
                "dataset.sha256": "4" * 64, "dataset.size_bytes": "21000000000",
                "dataset.uri": "s3://acme-llm-datasets/support-transcripts/2026-q4/"}
TAGS = {"mlflow.source.git.commit": COMMIT, "base_model": BASE, "training.job_id": "ft-chat-20261120-0110",
        "team": "support", **DATASET_TAGS}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = copy_example(tmp_path / "repo")
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(["git", "-C", str(root), "config", "user.email", "importer@acme.example"], check=True)
    return root


def register(server: MlflowServer, tmp_path: Path, name: str = "chat-assistant", *, files=FILES,
             tags=TAGS, metrics=METRICS, **kwargs) -> tuple[str, str]:
    return server.register(name, files, params=PARAMS, metrics=metrics, tags=tags,
                           description="Order tracking through the new tool API.", scratch=tmp_path, **kwargs)


def release_import(repo: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()  # what MLflow's client printed while registering
    code = main(["release", "import", "chat-assistant", *args, str(repo)])
    out, err = capsys.readouterr()
    return code, out, err


def releases(repo: Path) -> list[str]:
    return sorted(p.name for p in (repo / "releases/chat-assistant").iterdir())


def test_a_registered_version_becomes_a_release_that_validates_with_every_value_from_mlflow(
        mlflow_server: MlflowServer, repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    number, run_id = register(mlflow_server, tmp_path)
    code, out, err = release_import(repo, capsys, "--mlflow", f"models:/chat-assistant/{number}",
                                    "--tracking-uri", mlflow_server.uri, "--artifacts-destination", DESTINATION,
                                    "--from", "1.3.0")
    assert (code, err) == (0, ""), out
    assert "wrote releases/chat-assistant/1.4.0.yaml: chat-assistant 1.4.0 from 1.3.0 (as asked)" in out
    assert "version: MINOR, for new weights (bundle.weights.sha256)" in out
    assert "not used from MLflow models:/chat-assistant/" in out and "metric train_loss, tag team" in out

    data = load_yaml(repo / "releases/chat-assistant/1.4.0.yaml")
    weights = data["bundle"]["weights"]
    assert weights["sha256"] == hashlib.sha256(WEIGHTS).hexdigest()
    assert weights["size_bytes"] == len(WEIGHTS)
    # The URI is the server's store as the pods reach it; the bytes are at that path in the store.
    stored = weights["uri"].removeprefix(DESTINATION + "/")
    assert weights["uri"].startswith(DESTINATION + "/") and run_id in stored
    assert (mlflow_server.artifacts / stored).read_bytes() == WEIGHTS
    assert data["bundle"]["tokenizer"]["sha256"] == hashlib.sha256(FILES["tokenizer.json"]).hexdigest()
    assert data["revision"] == COMMIT
    assert data["description"] == "Order tracking through the new tool API."
    assert data["lineage"]["created_by"] == "priya.raman@acme.example"
    assert data["lineage"]["hyperparameters"] == {"learning_rate": 2e-05, "lora_rank": 64, "method": "lora",
                                                  "packing": True}
    assert data["lineage"]["base_model"] == {"name": "meta-llama/Llama-3.1-70B-Instruct",
                                             "source": "hf://meta-llama/Llama-3.1-70B-Instruct",
                                             "revision": BASE.rsplit("@", 1)[1], "architecture": None}
    assert "fill in (marked TODO(sluice) in the file): lineage.approvals, lineage.base_model.architecture\n" in out
    assert data["lineage"]["dataset"]["sha256"] == "4" * 64 and data["lineage"]["dataset"]["size_bytes"] == 21 * 10**9
    assert data["lineage"]["training"]["job_id"] == "ft-chat-20261120-0110"
    assert data["lineage"]["parent_version"] == "1.3.0"
    assert data["evaluation"] == {"toxicity": 0.012, "win_rate_vs_current": 0.58, "latency_p99_ms": 1790.0,
                                  "adversarial_pass_rate": 0.99, "benchmarks": {"mt_bench": 8.61}}
    # What MLflow cannot know stays the parent's, and says so.
    parent = load_yaml(repo / "releases/chat-assistant/1.3.0.yaml")
    assert data["bundle"]["config"] == parent["bundle"]["config"]
    assert data["bundle"]["serving"] == parent["bundle"]["serving"]
    assert data["rollout"] == parent["rollout"]
    text = (repo / "releases/chat-assistant/1.4.0.yaml").read_text()
    assert re.search(r"\n  config: +# kept from 1.3.0: not imported\n", text)
    assert re.search(r"\n  toxicity: 0.012 +# MLflow run metric toxicity\n", text)
    assert re.search(r"\n  benchmarks:\n    mt_bench: 8.61 +# MLflow run metric benchmark.mt_bench\n", text)
    assert "kept from 1.3.0 (not imported): bundle.config, bundle.few_shot_examples, bundle.safety.classifier" in out

    loaded = load_repository(repo)
    assert [(f.rule, f.file, f.yaml_path) for f in loaded.errors] == []


def test_an_alias_resolves_to_its_version(mlflow_server: MlflowServer, repo: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    register(mlflow_server, tmp_path)
    chosen_weights = b"the champion's weights\n"
    number, _ = register(mlflow_server, tmp_path, files={**FILES, "model.safetensors": chosen_weights})
    register(mlflow_server, tmp_path)  # a newer version that is not the champion
    mlflow_server.client().set_registered_model_alias("chat-assistant", "champion", number)
    code, out, _ = release_import(repo, capsys, "--mlflow", "models:/chat-assistant@champion", "--tracking-uri",
                                  mlflow_server.uri, "--artifacts-destination", DESTINATION, "--from", "1.3.0")
    assert code == 0, out
    data = load_yaml(repo / "releases/chat-assistant/1.4.0.yaml")
    assert data["bundle"]["weights"]["sha256"] == hashlib.sha256(chosen_weights).hexdigest()


def test_a_dataset_named_by_only_some_tags_is_left_to_fill_in_not_mixed_with_the_parents(
        mlflow_server: MlflowServer, repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tags = {k: v for k, v in TAGS.items() if k not in ("dataset.sha256", "dataset.size_bytes")}
    number, _ = register(mlflow_server, tmp_path, tags=tags)
    code, out, err = release_import(repo, capsys, "--mlflow", f"models:/chat-assistant/{number}", "--tracking-uri",
                                    mlflow_server.uri, "--artifacts-destination", DESTINATION, "--from", "1.3.0")
    assert code == 0, err
    assert "fill in (marked TODO(sluice) in the file): lineage.approvals, lineage.base_model.architecture, " \
           "lineage.dataset.sha256, lineage.dataset.size_bytes\n" in out
    data = load_yaml(repo / "releases/chat-assistant/1.4.0.yaml")
    assert data["lineage"]["dataset"]["sha256"] is None and data["lineage"]["dataset"]["version"] == "2026-q4"
    text = (repo / "releases/chat-assistant/1.4.0.yaml").read_text()
    assert re.search(r"\n    sha256: +# TODO\(sluice\): MLflow's dataset\.\* tags do not give sha256: "
                     r"tag dataset\.sha256 or fill in\n", text)
    assert {(f.file, f.yaml_path) for f in load_repository(repo).errors} == {
        ("releases/chat-assistant/1.4.0.yaml", "lineage.dataset.sha256"),
        ("releases/chat-assistant/1.4.0.yaml", "lineage.dataset.size_bytes")}


def test_weights_by_another_name_are_asked_for_and_then_taken(
        mlflow_server: MlflowServer, repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = {"ckpt/final.bin": WEIGHTS, "tokenizer.json": FILES["tokenizer.json"]}
    number, _ = register(mlflow_server, tmp_path, files=files)
    common = ["--mlflow", f"models:/chat-assistant/{number}", "--tracking-uri", mlflow_server.uri,
              "--artifacts-destination", DESTINATION, "--from", "1.3.0"]
    code, _, err = release_import(repo, capsys, *common)
    assert code == 2
    assert "has none of the weights files model.safetensors" in err
    assert "(files: ckpt/final.bin, tokenizer.json): name it with --artifact weights=<path>" in err
    assert releases(repo) == ["1.1.0.yaml", "1.2.0.yaml", "1.3.0.yaml"]
    code, out, _ = release_import(repo, capsys, *common, "--artifact", "weights=ckpt/final.bin")
    assert code == 0, out
    assert load_yaml(repo / "releases/chat-assistant/1.4.0.yaml")["bundle"]["weights"]["uri"].endswith(
        "/bundle/ckpt/final.bin")


@pytest.mark.parametrize(("args", "message"), [
    (["--mlflow", "models:/chat-assistant/999"], "has no version 999 of 'chat-assistant' (versions: "),
    (["--mlflow", "models:/no-such-model/1"], "has no registered model 'no-such-model'"),
    (["--mlflow", "runs:/abc/model"], "is not a registered model version: write models:/<name>/<version>"),
    (["--mlflow", "models:/chat-assistant/{number}", "--bump", "patch"],
     "--bump patch is too small: the imported changes need at least MINOR (new weights (bundle.weights.sha256)"),
])
def test_a_refused_import_says_why_and_writes_nothing(
        mlflow_server: MlflowServer, repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        args: list[str], message: str) -> None:
    number, _ = register(mlflow_server, tmp_path)
    args = [a.format(number=number) for a in args]
    code, _, err = release_import(repo, capsys, *args, "--tracking-uri", mlflow_server.uri,
                                  "--artifacts-destination", DESTINATION, "--from", "1.3.0")
    assert code == 2
    assert message in err
    assert releases(repo) == ["1.1.0.yaml", "1.2.0.yaml", "1.3.0.yaml"]


def test_proxied_files_need_the_store_the_pods_reach(mlflow_server: MlflowServer, repo: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    number, _ = register(mlflow_server, tmp_path)
    code, _, err = release_import(repo, capsys, "--mlflow", f"models:/chat-assistant/{number}",
                                  "--tracking-uri", mlflow_server.uri, "--from", "1.3.0")
    assert code == 2
    assert "MLflow serves this version's files through its artifact proxy (mlflow-artifacts:/" in err
    assert "pass --artifacts-destination" in err


def test_an_unreachable_server_is_named(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    code, _, err = release_import(repo, capsys, "--mlflow", "models:/chat-assistant/1",
                                  "--tracking-uri", f"http://127.0.0.1:{port}", "--from", "1.3.0")
    assert code == 2
    assert f"cannot reach MLflow at http://127.0.0.1:{port}" in err


def test_dvc_files_win_over_mlflows_for_their_slots_and_fill_the_dataset_hash_the_tags_left_out(
        mlflow_server: MlflowServer, repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One import from both sources: weights and the dataset's content from DVC, the rest from MLflow."""
    from ..dvc_kit import dvc, isolated_dvc, new_dvc_repo

    tags = {k: v for k, v in TAGS.items() if k not in ("dataset.sha256", "dataset.size_bytes", "dataset.uri")}
    number, _ = register(mlflow_server, tmp_path, tags=tags)
    dvc_weights, dataset = b"weights tracked by DVC\n" * 100, b'{"prompt": "where is my order?"}\n' * 50
    ml_repo = tmp_path / "ml"
    with isolated_dvc(tmp_path / "dvc-home"):
        new_dvc_repo(ml_repo, {"models/model.tar": dvc_weights, "data/train.jsonl": dataset},
                     ["models/model.tar", "data/train.jsonl"])
        dvc(ml_repo, "remote", "add", "-d", "store", "s3://acme-dvc/store")
        code, out, err = release_import(
            repo, capsys, "--mlflow", f"models:/chat-assistant/{number}", "--tracking-uri", mlflow_server.uri,
            "--artifacts-destination", DESTINATION, "--from", "1.3.0",
            "--dvc", f"weights={ml_repo}/models/model.tar.dvc", "--dvc", f"dataset={ml_repo}/data/train.jsonl.dvc")
    assert code == 0, err
    recorded = load_yaml(ml_repo / "models/model.tar.dvc")["outs"][0]
    data = load_yaml(repo / "releases/chat-assistant/1.4.0.yaml")
    md5 = recorded["md5"]
    assert data["bundle"]["weights"] == {"uri": f"s3://acme-dvc/store/files/md5/{md5[:2]}/{md5[2:]}",
                                         "sha256": hashlib.sha256(dvc_weights).hexdigest(), "md5": md5,
                                         "size_bytes": len(dvc_weights)}
    assert data["bundle"]["tokenizer"]["sha256"] == hashlib.sha256(FILES["tokenizer.json"]).hexdigest()  # MLflow's
    assert data["lineage"]["dataset"]["name"] == "support-transcripts"  # MLflow tags
    assert data["lineage"]["dataset"]["version"] == "2026-q4"
    assert data["lineage"]["dataset"]["sha256"] == hashlib.sha256(dataset).hexdigest()  # DVC
    assert data["lineage"]["dataset"]["size_bytes"] == len(dataset)
    assert re.search(rf"bundle\.weights +<- DVC {re.escape(str(ml_repo))}/models/model\.tar\.dvc\n", out)
    assert "lineage.dataset.sha256" not in out.split("fill in")[1].split("\n")[0]  # nothing left open there
    assert [(f.rule, f.yaml_path) for f in load_repository(repo).errors] == []
