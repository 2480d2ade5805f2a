"""load_repository: every file read, parsed and validated; every problem found with file, line, column and path."""

from __future__ import annotations

import builtins
import gc
import shutil
from pathlib import Path
from typing import Callable

import pytest
from ruamel.yaml.nodes import Node

from reconciler.adapters import repo_loader
from reconciler.adapters.repo_loader import NotARepository, load_repository
from reconciler.adapters.yaml_source import MAX_FILE_BYTES
from reconciler.core.findings import Severity
from reconciler.core.release import Release
from reconciler.core.rules import check

REL = "releases/chat-assistant/1.3.0.yaml"
REL_OLD = "releases/code-completion/2.0.0.yaml"
STAGING = "environments/staging.yaml"
PROD = "environments/prod.yaml"

Edit = Callable[[str], "str | bytes"]


def replace(old: str, new: str) -> Edit:
    def edit(text: str) -> str:
        assert text.count(old) == 1, f"{old!r} must occur once in the example file"
        return text.replace(old, new)

    return edit


def write(content: "str | bytes") -> Edit:
    return lambda _: content


def apply(repo: Path, edits: dict[str, Edit]) -> None:
    for rel, edit in edits.items():
        path = repo / rel
        new = edit(path.read_text(encoding="utf-8") if path.exists() else "")
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(new, bytes):
            path.write_bytes(new)
        else:
            path.write_text(new, encoding="utf-8")


def test_the_example_repository_is_clean(example_repo: Path) -> None:
    result = load_repository(example_repo)
    assert result.findings == []
    assert result.files == 7
    assert len(result.repository.releases) == 5
    assert sorted(result.repository.environments) == ["prod", "staging"]


# (edits, [(file, line, column, YAML path, rule, message substring, fix substring)]); nothing else may be found
BAD_REPOSITORIES = [
    pytest.param({REL: replace("      min_duration: 1h\n      min_requests: 1000\n",
                               "      min_duraton: 1h\n      min_requests: 1000\n")},
                 [(REL, 95, 7, "rollout.stages[1].min_duraton", "schema", "unknown field `min_duraton`",
                   "did you mean `min_duration`?")],
                 id="a misspelt field is reported at its key with a did-you-mean"),
    pytest.param({REL: replace("max_ratio_to_stable: 1.2}", "max_ratio_to_stabel: 1.2}")},
                 [(REL, 98, 36, "rollout.stages[1].gates[0].max_ratio_to_stabel", "schema",
                   "unknown field `max_ratio_to_stabel`", "did you mean `max_ratio_to_stable`?")],
                 id="a misspelt field inside a flow mapping in a list is located at its column"),
    pytest.param({REL: replace("{metric: ttft_p99_seconds, max: 1.5}", "{metric: ttft_p99_seconds, max: 1.5, "
                               "confidence: 0.95}")},
                 [(REL, 99, 11, "rollout.stages[1].gates[1]", "schema",
                   "a gate with confidence tests one effect against stable, but states max",
                   "keep exactly one of max_ratio_to_stable or max_increase_over_stable")],
                 id="a confidence with an absolute bound only is refused with a fix"),
    pytest.param({REL: replace("{metric: quality_score, min_ratio_to_stable: 0.98}",
                               "{metric: quality_score, max_ratio_to_stable: 1.5, max_increase_over_stable: 0.1, "
                               "confidence: 0.95}")},
                 [(REL, 104, 11, "rollout.stages[2].gates[0]", "schema",
                   "states max_increase_over_stable, max_ratio_to_stable",
                   "put other bounds in a separate gate without confidence")],
                 id="a confidence with two relative bounds is refused with a fix"),
    pytest.param({REL: replace("{metric: latency_p99_ms, max: 4000}", "{metric: latency_p99_ms, max_ratio_to_stable: 1.5}")},
                 [(REL, 119, 7, "rollout.rollback_triggers[1]", "schema",
                   "a trigger with max_ratio_to_stable compares with stable on the evidence, so it needs a confidence",
                   "add `confidence: 0.99`")],
                 id="a relative trigger without a confidence is refused with a fix"),
    pytest.param({STAGING: replace("    stage: 1 ", "    stag: 1 ")},
                 [(STAGING, 41, 5, "models.chat-assistant.stag", "schema", "unknown field `stag`",
                   "did you mean `stage`?")],
                 id="a misspelt field under a model deployment is suggested from ModelDeployment"),
    pytest.param({REL: replace("model: chat-assistant\n", "model: chat-assistant\nzzzzqqq: 1\n")},
                 [(REL, 5, 1, "zzzzqqq", "schema", "unknown field `zzzzqqq`",
                   "allowed here: bundle, description, evaluation, lineage, model, revision, rollout, version")],
                 id="an unknown field with no close match lists the allowed fields"),
    pytest.param({REL: replace("gpus: 4", "gpus: four")},
                 [(REL, 43, 5, "bundle.serving.gpus", "schema", "valid integer", "correct the value")],
                 id="text where an integer belongs is a type error at the value's key"),
    pytest.param({REL: replace('version: "1.3.0"', "version: 1.3")},
                 [(REL, 5, 1, "version", "schema", "valid string, got 1.3", 'quote it so YAML reads it as text: "1.3"')],
                 id="an unquoted version read as a number is a type error that says to quote it"),
    pytest.param({REL: replace("gpus: 4", "gpus:")},
                 [(REL, 43, 5, "bundle.serving.gpus", "schema", "`gpus` is empty (input should be a valid integer)",
                   "fill in `gpus:` under bundle.serving")],
                 id="an empty value where an integer belongs says to fill it in"),
    pytest.param({REL: replace("  few_shot_examples:\n    uri: s3://acme-llm-artifacts/chat-assistant/prompts/"
                               "support-examples-v5.jsonl\n    sha256: e494f3d82d58258debd5def506e12f93ecce38f"
                               "5840d2a9db5af467f7cb0688a\n", "  few_shot_examples: 5\n")},
                 [(REL, 23, 3, "bundle.few_shot_examples", "schema", "valid dictionary", "correct the value")],
                 id="a number where a mapping belongs is a type error"),
    pytest.param({STAGING: replace("stage: 1 ", "stage: 1.5 ")},
                 [(STAGING, 41, 5, "models.chat-assistant.stage", "schema", "valid integer, got 1.5",
                   "correct the value")],
                 id="a fraction where an integer belongs is a type error"),
    pytest.param({REL: replace("    gpu_type: nvidia-a100-80gb\n", "")},
                 [(REL, 41, 3, "bundle.serving.gpu_type", "schema", "`gpu_type` is required",
                   "add `gpu_type:` under bundle.serving")],
                 id="a missing nested field names the key and points at its parent's line"),
    pytest.param({REL: replace("revision: 4f2a9c1d07e5\n", "")},
                 [(REL, 4, 1, "revision", "schema", "`revision` is required", "under the top level")],
                 id="a missing top-level field points at the start of the document"),
    pytest.param({STAGING: replace("  - name: a10g", "  - nmae: a10g")},
                 [(STAGING, 17, 5, "gpu_pools[1].name", "schema", "`name` is required", "add `name:` under gpu_pools[1]"),
                  (STAGING, 17, 5, "gpu_pools[1].nmae", "schema", "unknown field `nmae`", "did you mean `name`?")],
                 id="a misspelt required key is reported both as missing and as unknown"),
    pytest.param({STAGING: replace("2026-11-21T09:00:00Z", "2026-11-21T09:00:00")},
                 [(STAGING, 42, 5, "models.chat-assistant.stage_started_at", "schema", "timezone",
                   "2026-11-20T09:00:00Z")],
                 id="a time without a timezone is refused with an example that has one"),
    pytest.param({STAGING: replace("2026-11-21T09:00:00Z", "2026-11-21")},
                 [(STAGING, 42, 5, "models.chat-assistant.stage_started_at", "schema", "2026-11-21",
                   "2026-11-20T09:00:00Z")],
                 id="a bare date where a time belongs is refused"),
    pytest.param({STAGING: replace("2026-11-21T09:00:00Z", "2026-02-30T09:00:00Z")},
                 [(STAGING, 42, 5, "models.chat-assistant.stage_started_at", "schema", "2026-02-30", "")],
                 id="an impossible date is refused at its key"),
    pytest.param({STAGING: replace("protected: false", "protected: yes")},
                 [(STAGING, 35, 3, "policy.protected", "schema", "valid boolean, got 'yes'", "")],
                 id="yes is text, not a boolean"),
    pytest.param({REL: replace("pii_redaction: true", "pii_redaction: !!bool maybe")},
                 [(REL, 36, 20, "bundle.safety.pii_redaction", "yaml", "cannot read 'maybe'", "")],
                 id="an explicit !!bool that is not a boolean is refused at its value"),
    pytest.param({STAGING: replace("istio:\n  gateway: istio-system/llm-gateway\n",
                                   "istio: &i\n  gateway: istio-system/llm-gateway\n  loop: *i\n")},
                 [(STAGING, 26, 3, "istio.loop", "yaml", "an alias refers to the collection that contains it",
                   "remove the alias")],
                 id="a recursive alias is located at the key that holds it"),
    pytest.param({STAGING: write("- a\n- b\n")},
                 [(STAGING, 1, 1, "", "schema", "the document is a list, not a mapping", "`key: value` lines")],
                 id="a top-level list is refused"),
    pytest.param({STAGING: write("")},
                 [(STAGING, 1, 1, "", "yaml", "the file is empty", "delete the file")],
                 id="an empty environment file is refused"),
    pytest.param({"environments/dev.yml": write("cluster: {}\n")},
                 [("environments/dev.yml", 1, 1, "", "file-name", "end in .yaml", "rename it to environments/dev.yaml")],
                 id="a .yml file is reported by name and not read"),
    pytest.param({REL: lambda t: replace("gpus: 4", "gpus: four")(
                      replace('version: "1.3.0"\n', 'version: "1.3.0"\nversion: "1.3.0"\n')(
                          replace("model: chat-assistant\n", "model: chat-assistant\nmodel: chat-assistant\n")(t)))},
                 [(REL, 5, 1, "model", "yaml", "duplicate key 'model' (first on line 4)", "remove one of them"),
                  (REL, 7, 1, "version", "yaml", "duplicate key 'version' (first on line 6)", "remove one of them"),
                  (REL, 45, 5, "bundle.serving.gpus", "schema", "valid integer", "correct the value")],
                 id="each duplicate key is reported and the rest of the file is still validated"),
    pytest.param({STAGING: lambda t: t.encode().replace(b"llm-staging", b"llm-st\xffaging")},
                 [(STAGING, 6, 15, "", "yaml", "not UTF-8: byte 0xff", "save the file as UTF-8")],
                 id="a non-UTF-8 byte is reported at its line and column"),
    pytest.param({REL: replace("gpus: 4", "gpus: [4")},
                 [(REL, 44, 13, "", "yaml", "YAML syntax error: did not find expected ',' or ']'",
                   "fix the YAML syntax")],
                 id="a YAML syntax error is reported where the parser stops, and no schema error follows"),
    pytest.param({REL: replace("gpus: 4", "gpus: true")},
                 [(REL, 43, 5, "bundle.serving.gpus", "schema", "valid integer", "correct the value")],
                 id="a boolean where an integer belongs is a type error"),
    pytest.param({STAGING: replace("replicas: 1", 'replicas: "1"')},
                 [(STAGING, 44, 5, "models.chat-assistant.replicas", "schema", "valid integer", "correct the value")],
                 id="quoted text where an integer belongs is a type error"),
]


@pytest.mark.parametrize(("edits", "expected"), BAD_REPOSITORIES)
def test_bad_file_is_reported_precisely(example_repo: Path, edits: dict[str, Edit], expected: list) -> None:
    apply(example_repo, edits)
    result = load_repository(example_repo)
    got = [(f.file, f.line, f.column, f.yaml_path, f.rule) for f in result.findings]
    assert got == [e[:5] for e in expected], [f.message for f in result.findings]
    for finding, (*_, message, fix) in zip(result.findings, expected):
        assert finding.severity is Severity.ERROR
        assert message in finding.message
        assert fix in finding.fix


def test_every_broken_file_is_reported_in_one_run(example_repo: Path) -> None:
    apply(example_repo, {
        REL: replace("gpus: 4", "gpus: [4"),
        REL_OLD: replace("gpus: 1", "gpus: one"),
        PROD: replace("namespace: llm-serving", "namespac: llm-serving"),
        STAGING: lambda t: t.encode().replace(b"llm-staging", b"llm-st\xffaging"),
        "environments/dev.yml": write("x: 1\n"),
        "releases/chat-assistant/1.4.0.yaml": write("model: chat-assistant\nmodel: x\n"),
    })
    result = load_repository(example_repo)
    new = "releases/chat-assistant/1.4.0.yaml"
    assert [(f.file, f.line, f.yaml_path, f.rule) for f in result.findings] == [
        ("environments/dev.yml", 1, "", "file-name"),
        (PROD, 8, "namespac", "schema"),
        (STAGING, 6, "", "yaml"),
        (REL, 44, "", "yaml"),
        *[(new, 1, key, "schema") for key in ("version", "revision", "bundle", "lineage", "evaluation")],
        (new, 2, "model", "yaml"),  # the duplicate key, and (above) the fields still missing after it
        (REL_OLD, 37, "bundle.serving.gpus", "schema"),
    ]
    assert result.files == 8  # the .yml file is named, not read
    assert {f.file for f in result.errors} == {
        "environments/dev.yml", PROD, STAGING, "releases/chat-assistant/1.4.0.yaml", REL, REL_OLD}
    # broken releases do not cause "no such release" errors in the environments that point at them
    assert not [f for f in result.findings if f.rule == "pointers"]


def test_a_file_over_the_size_limit_is_not_read(example_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = example_repo / "releases/chat-assistant/9.0.0.yaml"
    with open(big, "wb") as handle:  # sparse: 64 MiB on paper, nothing on disk
        handle.truncate(64 * MAX_FILE_BYTES)
    read_from: dict[str, int] = {}

    class CountingFile:
        def __init__(self, handle):  # type: ignore[no-untyped-def]
            self.handle = handle

        def __enter__(self):  # type: ignore[no-untyped-def]
            return self

        def __exit__(self, *exc):  # type: ignore[no-untyped-def]
            self.handle.close()

        def read(self, size: int = -1) -> bytes:
            data = self.handle.read(size)
            read_from[Path(self.handle.name).name] = read_from.get(Path(self.handle.name).name, 0) + len(data)
            return data

    monkeypatch.setattr(repo_loader, "open", lambda *a, **k: CountingFile(builtins.open(*a, **k)), raising=False)
    result = load_repository(example_repo)
    assert [(f.file, f.line, f.column, f.rule, f.message) for f in result.findings] == [
        ("releases/chat-assistant/9.0.0.yaml", 1, 1, "yaml",
         f"file is {64 * MAX_FILE_BYTES:,} bytes, over the {MAX_FILE_BYTES:,}-byte limit")]
    assert read_from.get("9.0.0.yaml", 0) == 0
    assert read_from["1.3.0.yaml"] == (example_repo / REL).stat().st_size  # the counter works


def test_a_file_that_grows_after_the_size_check_is_read_only_up_to_the_limit(tmp_path: Path) -> None:
    (tmp_path / "releases").mkdir()
    path = tmp_path / "releases" / "big.yaml"
    path.write_bytes(b"#" * (3 * MAX_FILE_BYTES))
    raw = repo_loader._Loader(tmp_path)._read("releases/big.yaml")
    assert len(raw) == MAX_FILE_BYTES + 1  # one byte over: parse_yaml refuses it without the rest


def test_an_alias_bomb_in_a_release_is_one_error(example_repo: Path) -> None:
    lines = ["a: &a [" + ", ".join(['"lol"'] * 9) + "]"]
    for previous, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]")
    (example_repo / "releases/chat-assistant/9.0.0.yaml").write_text("\n".join(lines) + "\n")
    result = load_repository(example_repo)
    assert [(f.file, f.line, f.rule) for f in result.findings] == [("releases/chat-assistant/9.0.0.yaml", 1, "yaml")]
    assert "expands to more than 100,000 values" in result.findings[0].message


@pytest.mark.parametrize("value", ["[]", "{kind: canary}"], ids=["a list", "a mapping"])
def test_a_strategy_that_is_not_text_is_an_error_not_a_crash(example_repo: Path, value: str) -> None:
    rel = "releases/chat-assistant/1.1.0.yaml"  # no `stages:`, so the default table is looked up by strategy
    apply(example_repo, {rel: replace("strategy: canary", f"strategy: {value}")})
    result = load_repository(example_repo)
    assert [(f.file, f.line, f.column, f.yaml_path, f.rule) for f in result.findings] == [
        (rel, 90, 3, "rollout.strategy", "schema")]
    assert "canary" in result.findings[0].message


def test_a_warning_alone_is_not_an_error(example_repo: Path) -> None:
    apply(example_repo, {PROD: replace("    pool: a10g\n    replicas: 3\n", "    pool: a10g\n    replicas: 3\n    stage: 2\n")})
    result = load_repository(example_repo)
    assert result.errors == []
    assert [(f.file, f.line, f.column, f.yaml_path, f.rule) for f in result.warnings] == [
        (PROD, 58, 5, "models.code-completion.stage", "stage")]


@pytest.mark.parametrize("make", [
    pytest.param(lambda p: p / "missing", id="a path that does not exist"),
    pytest.param(lambda p: (p / "file.yaml").write_text("a: 1\n") and p / "file.yaml", id="a file"),
    pytest.param(lambda p: (p / "empty").mkdir() or p / "empty", id="a directory without releases or environments"),
])
def test_not_a_repository(tmp_path: Path, make: Callable[[Path], Path]) -> None:
    with pytest.raises(NotARepository):
        load_repository(make(tmp_path))


def test_a_repository_with_only_environments_is_loaded(example_repo: Path) -> None:
    shutil.rmtree(example_repo / "releases")
    result = load_repository(example_repo)
    assert result.files == 2
    # the environments now point at releases that do not exist
    assert "pointers" in {f.rule for f in result.errors}


def test_no_yaml_node_tree_is_held_while_the_rules_run(example_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Node trees (kept only to turn a YAML path into a line) were most of the memory at 5,000 files;
    a rule's finding is located by reading its file again, at the same line as before."""
    held: list[int] = []

    def counting_check(repo):  # type: ignore[no-untyped-def]
        held.append(sum(isinstance(o, Node) for o in gc.get_objects()))
        return check(repo)

    monkeypatch.setattr(repo_loader, "check", counting_check)
    apply(example_repo, {PROD: replace("    pool: a10g\n    replicas: 3\n", "    pool: a10g\n    replicas: 3\n    stage: 2\n")})
    result = load_repository(example_repo)
    assert held == [0]
    assert [(f.file, f.line, f.column, f.yaml_path, f.rule) for f in result.findings] == [
        (PROD, 58, 5, "models.code-completion.stage", "stage")]


def test_loaded_models_share_their_sets_of_given_fields(example_repo: Path) -> None:
    """pydantic keeps, per instance, the set of fields the input gave (~40% of a release's memory);
    instances of one class with the same fields share one set, and copying one still works alone."""
    first, second = (entry.release for entry in load_repository(example_repo).repository.releases[:2])
    assert first.bundle.model_fields_set == second.bundle.model_fields_set
    assert first.bundle.model_fields_set is second.bundle.model_fields_set
    before = set(second.bundle.model_fields_set)
    copy = first.bundle.model_copy(update={"gpus": 2})
    assert copy.gpus == 2 and copy.model_fields_set is not first.bundle.model_fields_set
    assert second.bundle.model_fields_set == before == first.bundle.model_fields_set
    assert first == Release.model_validate(first.model_dump())  # equal to a model built afresh


def test_edits_are_checked_without_being_written(example_repo: Path) -> None:
    """How `start` and `reconcile` check an environment edit before writing it: the edited text is
    read in place of the file, and a finding in it is located in that text."""
    before = (example_repo / PROD).read_text(encoding="utf-8")
    edited = before.replace("    pool: a10g\n    replicas: 3\n", "    pool: a10g\n    replicas: 3\n    stage: 2\n")
    result = load_repository(example_repo, edits={PROD: edited})
    assert [(f.file, f.line, f.column, f.yaml_path, f.rule) for f in result.findings] == [
        (PROD, 58, 5, "models.code-completion.stage", "stage")]
    assert (example_repo / PROD).read_text(encoding="utf-8") == before
    assert load_repository(example_repo).findings == []
