"""The pure half of `release import`: MLflow's names -> release fields, sources merged, the version chosen."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.adapters.repo_loader import load_repository
from reconciler.core.mlflow_mapping import (
    RegisteredVersion,
    StoredFile,
    choose_files,
    fetchable_uri,
    import_version,
    parse_models_uri,
    typed_param,
)
from reconciler.core.release_import import ImportRefused, merged, plan_import, reference_import
from reconciler.core.semver import Bump

EXAMPLE = Path(__file__).resolve().parents[2]
SHA = "a" * 64


@pytest.fixture(scope="module")
def parent():
    return load_repository(EXAMPLE).repository.release("chat-assistant", "1.3.0")


@pytest.mark.parametrize(("text", "value"), [
    ("64", 64), ("-3", -3), ("2e-5", 2e-05), ("0.1", 0.1), (".5", 0.5), ("1E3", 1000.0), ("True", True),
    ("false", False), ("lora", "lora"), ("nan", "nan"), ("inf", "inf"), ("1.2.3", "1.2.3"), ("", ""),
    ("0x10", "0x10"),
])
def test_params_keep_numbers_and_booleans_typed_and_nothing_else(text: str, value: object) -> None:
    got = typed_param(text)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize(("uri", "parsed"), [
    ("models:/chat-assistant/7", ("chat-assistant", "7", None)),
    ("models:/chat-assistant@champion", ("chat-assistant", None, "champion")),
])
def test_models_uris(uri: str, parsed: tuple) -> None:
    assert parse_models_uri(uri) == parsed


@pytest.mark.parametrize("uri", ["models:/chat-assistant", "models:/chat-assistant/latest", "runs:/abc/model",
                                 "chat-assistant/7", "models:/a/7/extra"])
def test_other_uris_are_refused_with_the_form_to_write(uri: str) -> None:
    with pytest.raises(ImportRefused, match="write models:/<name>/<version>"):
        parse_models_uri(uri)


@pytest.mark.parametrize(("stored", "destination", "expected"), [
    ("s3://b/1/r/artifacts/bundle/model.tar", None, "s3://b/1/r/artifacts/bundle/model.tar"),
    ("gs://b/x", "s3://ignored", "gs://b/x"),
    ("mlflow-artifacts:/1/r/artifacts/m.tar", "s3://acme/mlf/", "s3://acme/mlf/1/r/artifacts/m.tar"),
    ("mlflow-artifacts://mlflow.internal:5000/1/r/artifacts/m.tar", "https://cdn.acme.example/mlf",
     "https://cdn.acme.example/mlf/1/r/artifacts/m.tar"),
])
def test_fetchable_uris(stored: str, destination: str | None, expected: str) -> None:
    assert fetchable_uri(stored, destination) == expected


@pytest.mark.parametrize(("stored", "destination", "message"), [
    ("mlflow-artifacts:/1/r/m.tar", None, "pass --artifacts-destination"),
    ("mlflow-artifacts:/1/r/m.tar", "/srv/mlflow", "--artifacts-destination '/srv/mlflow': the serving pods fetch"),
    ("file:///srv/mlflow/1/r/m.tar", None, "the serving pods cannot fetch file:///srv/mlflow/1/r/m.tar"),
    ("http://mlflow.internal/m.tar", None, "cannot fetch http://"),
])
def test_what_the_pods_cannot_fetch_is_refused(stored: str, destination: str | None, message: str) -> None:
    with pytest.raises(ImportRefused, match=message.replace("(", r"\(").replace("?", r"\?")):
        fetchable_uri(stored, destination)


def test_files_are_chosen_by_name_unless_asked() -> None:
    listing = ["MLmodel", "config.json", "model.tar", "model.safetensors", "tok/tokenizer.json", "tokenizer.json"]
    assert choose_files(listing, {}, "v") == {"weights": "model.safetensors", "tokenizer": "tokenizer.json",
                                              "config": "config.json"}
    assert choose_files(listing, {"weights": "model.tar", "tokenizer": "tok/tokenizer.json"}, "v") == {
        "weights": "model.tar", "tokenizer": "tok/tokenizer.json", "config": "config.json"}
    with pytest.raises(ImportRefused, match=r"v has no file 'x.bin' for weights \(files: MLmodel, config.json"):
        choose_files(listing, {"weights": "x.bin"}, "v")


def version(**fields) -> RegisteredVersion:
    return RegisteredVersion(uri="models:/chat-assistant/7", name="chat-assistant", version="7", **fields)


def test_tags_for_a_dataset_replace_the_whole_block_and_name_what_they_left_out() -> None:
    imported = import_version(version(tags={"dataset.name": "tickets", "dataset.size_bytes": "12",
                                            "dataset.colour": "red", "mlflow.user": "x"}), {})
    assert [(s.dotted, s.value) for s in imported.supplied] == [("lineage.dataset", {"name": "tickets",
                                                                                     "size_bytes": 12})]
    assert [m.dotted for m in imported.missing] == ["lineage.dataset.version", "lineage.dataset.sha256",
                                                    "lineage.dataset.uri"]
    assert imported.unused == ("tag dataset.colour",)  # mlflow.* system tags are not listed


def test_a_whole_number_tag_that_is_not_one_is_refused() -> None:
    with pytest.raises(ImportRefused, match=r"dataset.size_bytes='12 GB' is not a whole number"):
        import_version(version(tags={"dataset.size_bytes": "12 GB"}), {})


def test_an_unpinned_base_model_tag_is_refused_with_the_hubs_rule() -> None:
    with pytest.raises(ImportRefused, match="MLflow run tag base_model: .*main"):
        import_version(version(tags={"base_model": "hf://meta-llama/Llama-3.1-8B@main"}), {})


def test_a_creator_who_is_not_an_email_is_not_taken_and_the_reader_is_told() -> None:
    imported = import_version(version(creator="", run_user="root"), {})
    assert not [s for s in imported.supplied if s.dotted == "lineage.created_by"]
    assert imported.remarks == ("MLflow's creator 'root' is not an e-mail address, so lineage.created_by is not "
                                "taken from MLflow",)
    chosen = import_version(version(creator="ml@acme.example", run_user="root"), {}).supplied
    assert [s.value for s in chosen if s.dotted == "lineage.created_by"] == ["ml@acme.example"]


def test_later_sources_win_and_a_field_set_inside_an_earlier_block_is_applied_after_it() -> None:
    mlflow = import_version(version(tags={"dataset.name": "tickets", "dataset.version": "v2"}),
                            {"weights": StoredFile("model.tar", "s3://m/model.tar", SHA, 3)})
    dvc_weights = reference_import("weights", {"uri": "s3://d/files/md5/ab/c", "sha256": "b" * 64, "md5": "c" * 32,
                                               "size_bytes": 4}, "DVC w.dvc")
    dvc_data = reference_import("dataset", {"uri": "s3://d/files/md5/12/3", "sha256": "d" * 64, "size_bytes": 9},
                                "DVC d.dvc")
    order = [(s.dotted, s.source) for s in merged([mlflow, dvc_weights, dvc_data])]
    assert ("bundle.weights", "DVC w.dvc") in order
    assert ("bundle.weights", "MLflow file model.tar (sha256 of the bytes served)") not in order
    assert order.index(("lineage.dataset", "MLflow run tags dataset.name, dataset.version")) < \
        order.index(("lineage.dataset.sha256", "DVC d.dvc"))


def test_the_version_follows_from_what_changed_and_an_asked_bump_may_not_be_smaller(parent) -> None:
    prompt = reference_import("system_prompt", {"uri": "s3://p/prompt.txt", "sha256": SHA}, "DVC p.dvc")
    plan = plan_import(parent, [prompt], None)
    assert plan.bump is Bump.MINOR and [r.dotted for r in plan.reasons] == ["bundle.system_prompt.sha256"]
    assert ("bundle", "system_prompt") not in plan.kept and ("bundle", "weights") in plan.kept
    assert plan_import(parent, [prompt], Bump.MAJOR).bump is Bump.MAJOR
    with pytest.raises(ImportRefused, match="--bump patch is too small: the imported changes need at least MINOR "
                                            r"\(a changed system prompt \(bundle.system_prompt.sha256\)\)"):
        plan_import(parent, [prompt], Bump.PATCH)


def test_an_unchanged_import_is_still_a_new_patch_version(parent) -> None:
    same = reference_import("config", parent.bundle.config.model_dump(mode="json"), "DVC c.dvc")
    plan = plan_import(parent, [same], None)
    assert (plan.bump, plan.reasons) == (Bump.PATCH, [])


def test_a_value_the_schema_refuses_is_named_before_anything_is_written(parent) -> None:
    bad = reference_import("weights", {"uri": "ftp://x/model.tar", "sha256": SHA}, "DVC w.dvc")
    with pytest.raises(ImportRefused, match="the imported value at bundle.weights.uri is not valid"):
        plan_import(parent, [bad], None)


def test_a_dataset_file_gives_content_and_asks_for_the_version(parent) -> None:
    imported = reference_import("dataset", {"uri": "s3://d/files/md5/12/3", "sha256": SHA, "md5": "c" * 32,
                                            "size_bytes": 9}, "DVC d.dvc")
    assert [s.dotted for s in imported.supplied] == ["lineage.dataset.sha256", "lineage.dataset.size_bytes",
                                                     "lineage.dataset.uri"]
    plan = plan_import(parent, [imported], None)
    assert [m.dotted for m in plan.missing] == ["lineage.dataset.version"]
    assert plan.bump is Bump.MINOR  # different data

