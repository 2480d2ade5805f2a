"""update_models edits only the pointers it is given (a diff shows exactly those lines, every comment
of an untouched key survives), the result loads back through the project's loader, and
write_atomically never leaves a half-written or missing file."""

from __future__ import annotations

import difflib
from itertools import accumulate
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.adapters import environment_writer
from reconciler.adapters.environment_writer import POINTER_KEYS, update_models, write_atomically
from reconciler.adapters.repo_loader import load_repository
from reconciler.adapters.yaml_source import parse_yaml
from reconciler.core.environment import ModelDeployment

from ..conftest import ROOT, copy_example

STAGING = "environments/staging.yaml"
PROD = "environments/prod.yaml"
CHAT = "chat-assistant"
CODE = "code-completion"
NOW = datetime(2026, 11, 22, 10, 0, tzinfo=timezone.utc)

SETTINGS = settings(max_examples=150, deadline=None, database=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


def example(rel: str) -> str:
    return (ROOT / rel).read_text(encoding="utf-8")


def line_changes(before: str, after: str) -> tuple[list[str], list[str]]:
    """(lines only in `before`, lines only in `after`), in file order."""
    removed, added = [], []
    matcher = difflib.SequenceMatcher(a=before.splitlines(), b=after.splitlines(), autojunk=False)
    for tag, a0, a1, b0, b1 in matcher.get_opcodes():
        if tag != "equal":
            removed += before.splitlines()[a0:a1]
            added += after.splitlines()[b0:b1]
    return removed, added


def models_block(text: str, model: str) -> list[str]:
    """The lines of `models.<model>` (its key line and its indented body)."""
    lines = text.splitlines()
    start = lines.index(f"  {model}:")
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith("    ")), len(lines))
    return lines[start:end]


def promote(stable: str, candidate: str) -> dict[str, object]:
    return {"stable": candidate, "standby": stable, "standby_until": NOW + timedelta(days=7),
            "candidate": None, "stage": None, "stage_started_at": None}


# --- exact edits on the example files ------------------------------------------------------------

@pytest.mark.parametrize("rel", [STAGING, PROD])
def test_nothing_to_change_returns_the_text_unchanged(rel: str) -> None:
    text = example(rel)
    assert update_models(text, {}) == text
    assert update_models(text, {CHAT: {"stable": "1.2.0", "pool": "a100", "standby_until": None}}) == text


def test_a_stage_advance_changes_exactly_the_two_lines_and_drops_the_stale_comment() -> None:
    before = example(STAGING)
    after = update_models(before, {CHAT: {"stage": 2, "stage_started_at": NOW}})
    assert line_changes(before, after) == (
        ["    stage: 1                              # 1% of traffic",
         "    stage_started_at: 2026-11-21T09:00:00Z"],
        ["    stage: 2",
         "    stage_started_at: 2026-11-22T10:00:00Z"])


def test_an_edit_of_the_second_model_leaves_the_first_alone() -> None:
    before = example(STAGING)
    after = update_models(before, {CODE: {"stage": 1, "stage_started_at": NOW}})
    assert line_changes(before, after) == (
        ["    stage: 0                              # blue/green: smoke checks at 0%",
         "    stage_started_at: 2026-11-22T07:30:00Z"],
        ["    stage: 1",
         "    stage_started_at: 2026-11-22T10:00:00Z"])


def test_starting_a_canary_in_prod_adds_the_keys_after_the_pointers_and_before_the_pool() -> None:
    before = example(PROD)
    after = update_models(before, {CHAT: {"candidate": "1.3.0", "stage": 0, "stage_started_at": NOW}})
    assert line_changes(before, after) == ([], [
        '    candidate: "1.3.0"',
        "    stage: 0",
        "    stage_started_at: 2026-11-22T10:00:00Z"])
    assert models_block(after, CHAT) == [
        "  chat-assistant:",
        '    stable: "1.2.0"',
        '    candidate: "1.3.0"',
        '    standby: "1.1.0"      # previous stable, kept warm for a one-route-change rollback',
        "    stage: 0",
        "    stage_started_at: 2026-11-22T10:00:00Z",
        "    pool: a100",
        "    replicas: 4"]


def test_a_promotion_moves_the_pointers_and_keeps_the_rest_of_the_file() -> None:
    before = example(STAGING)
    after = update_models(before, {CHAT: promote("1.2.0", "1.3.0")})
    assert models_block(after, CHAT) == [
        "  chat-assistant:",
        '    stable: "1.3.0"',
        '    standby: "1.2.0"',
        "    standby_until: 2026-11-29T10:00:00Z",
        "    pool: a100",
        "    replicas: 1"]
    assert models_block(after, CODE) == models_block(before, CODE)
    outside = before.split("models:")[0]
    assert after.startswith(outside)


def test_removing_a_key_removes_its_line_and_its_comment() -> None:
    before = example(PROD)
    after = update_models(before, {CHAT: {"standby": None}})
    assert line_changes(before, after) == (
        ['    standby: "1.1.0"      # previous stable, kept warm for a one-route-change rollback'], [])
    assert update_models(before, {CHAT: {"candidate": None}}) == before  # absent already: nothing to do


def test_removing_the_last_commented_key_keeps_the_next_keys_comment_and_blank_line() -> None:
    before = (
        "models:\n"
        "  chat-assistant:\n"
        '    stable: "1.2.0"\n'
        '    candidate: "1.3.0"\n'
        "    stage: 1   # 1%\n"
        "\n"
        "    # serving\n"
        "    pool: a100\n"
        "  # the second model\n"
        "  code-completion:\n"
        '    stable: "2.0.0"   # since May\n'
        "\n"
        "    pool: a10g\n")
    after = update_models(before, {CHAT: {"candidate": None, "stage": None}, CODE: {"stable": None}})
    assert after == (
        "models:\n"
        "  chat-assistant:\n"
        '    stable: "1.2.0"\n'
        "\n"
        "    # serving\n"
        "    pool: a100\n"
        "  # the second model\n"
        "  code-completion:\n"
        "\n"
        "    pool: a10g\n")


def test_a_new_key_after_a_commented_key_goes_between_the_comment_and_the_next_keys_comment() -> None:
    before = (
        "models:\n"
        "  chat-assistant:\n"
        '    stable: "1.2.0"   # since May\n'
        "\n"
        "    # serving\n"
        "    pool: a100\n")
    after = update_models(before, {CHAT: {"standby": "1.1.0"}})
    assert after == (
        "models:\n"
        "  chat-assistant:\n"
        '    stable: "1.2.0"   # since May\n'
        '    standby: "1.1.0"\n'
        "\n"
        "    # serving\n"
        "    pool: a100\n")


def test_new_keys_without_pool_or_replicas_go_at_the_end_in_pointer_order() -> None:
    before = 'models:\n  chat-assistant:\n    pool: a100\n    stable: "1.2.0"\n'
    after = update_models(before, {CHAT: {"stage": 1, "candidate": "1.3.0", "replicas": 2}})
    assert after == ('models:\n  chat-assistant:\n    pool: a100\n    stable: "1.2.0"\n'
                     '    candidate: "1.3.0"\n    stage: 1\n    replicas: 2\n')


def test_the_files_own_list_indentation_is_kept() -> None:
    before = (
        "gpu_pools:\n"
        "- name: a100      # dash at the key's column\n"
        "  max_nodes: 3\n"
        "models:\n"
        "    chat-assistant:\n"
        '        stable: "1.2.0"\n'
        "        stage: 1\n"
        "        pool: a100\n")
    after = update_models(before, {CHAT: {"stage": 2, "candidate": "1.3.0"}})
    assert line_changes(before, after) == (["        stage: 1"], ['        candidate: "1.3.0"', "        stage: 2"])


def test_crlf_line_endings_and_a_byte_order_mark_are_kept() -> None:
    before = "\ufeffmodels:\r\n  chat-assistant:\r\n    stable: \"1.2.0\"\r\n    stage: 1\r\n"
    after = update_models(before, {CHAT: {"stage": 2}})
    assert after == "\ufeffmodels:\r\n  chat-assistant:\r\n    stable: \"1.2.0\"\r\n    stage: 2\r\n"


# --- values --------------------------------------------------------------------------------------

def test_instants_are_written_in_utc_whole_seconds_and_read_back_as_the_same_instant() -> None:
    local = datetime(2026, 11, 22, 11, 30, 15, 999_999, tzinfo=timezone(timedelta(hours=1, minutes=30)))
    after = update_models(example(STAGING), {CHAT: {"stage_started_at": local}})
    assert "    stage_started_at: 2026-11-22T10:00:15Z\n" in after
    loaded = parse_yaml(after.encode()).data["models"][CHAT]["stage_started_at"]
    assert loaded == local.replace(microsecond=0)
    assert loaded.utcoffset() == timedelta(0)


def test_versions_stay_text_and_stages_stay_numbers() -> None:
    after = update_models(example(STAGING), {CHAT: {"candidate": "1.10", "stage": 3}})
    assert '    candidate: "1.10"\n' in after
    data = parse_yaml(after.encode()).data["models"][CHAT]
    assert (data["candidate"], data["stage"]) == ("1.10", 3)


@pytest.mark.parametrize(("value", "error", "message"), [
    (1.5, TypeError, "models.chat-assistant.stage: cannot write float 1.5"),
    (True, TypeError, "cannot write True"),
    (datetime(2026, 11, 22, 10, 0), ValueError, "has no timezone"),
    (["1.3.0"], TypeError, "cannot write list"),
])
def test_a_value_that_cannot_be_written_is_refused(value: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message.replace(".", r"\.").replace("(", r"\(")):
        update_models(example(STAGING), {CHAT: {"stage": value}})


def test_an_unknown_model_is_a_key_error_naming_it_and_the_known_ones() -> None:
    with pytest.raises(KeyError, match="summarizer.*chat-assistant, code-completion"):
        update_models(example(STAGING), {CHAT: {"stage": 2}, "summarizer": {"stage": 1}})
    with pytest.raises(KeyError, match="no `models:` mapping"):
        update_models("cluster:\n  name: x\n", {CHAT: {"stage": 1}})


# --- through the project's loader -----------------------------------------------------------------

def _load_after(tmp_path: Path, rel: str, changes: dict[str, dict[str, object]]) -> ModelDeployment:
    root = copy_example(tmp_path / "repo")
    path = root / rel
    write_atomically(path, update_models(path.read_text(encoding="utf-8"), changes))
    loaded = load_repository(root)
    assert not loaded.errors, loaded.errors
    return loaded.repository.environments[Path(rel).stem].models[next(iter(changes))]


def test_a_stage_advance_loads_with_the_expected_values(tmp_path: Path) -> None:
    chat = _load_after(tmp_path, STAGING, {CHAT: {"stage": 2, "stage_started_at": NOW}})
    assert (chat.stable, chat.candidate, chat.stage, chat.stage_started_at) == ("1.2.0", "1.3.0", 2, NOW)


def test_a_removed_standby_loads_as_none(tmp_path: Path) -> None:
    chat = _load_after(tmp_path, PROD, {CHAT: {"standby": None}})
    assert (chat.stable, chat.standby, chat.replicas) == ("1.2.0", None, 4)


def test_a_promotion_loads_with_the_expected_values(tmp_path: Path) -> None:
    chat = _load_after(tmp_path, STAGING, {CHAT: promote("1.2.0", "1.3.0")})
    assert (chat.stable, chat.candidate, chat.standby, chat.stage, chat.stage_started_at) == (
        "1.3.0", None, "1.2.0", 0, None)
    assert chat.standby_until == NOW + timedelta(days=7)


# --- write_atomically -----------------------------------------------------------------------------

def test_write_atomically_replaces_the_content_and_keeps_the_mode(tmp_path: Path) -> None:
    path = tmp_path / "staging.yaml"
    path.write_text("old\n", encoding="utf-8")
    path.chmod(0o640)
    write_atomically(path, "new ✓\n")
    assert path.read_text(encoding="utf-8") == "new ✓\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["staging.yaml"]


def test_write_atomically_creates_a_missing_file(tmp_path: Path) -> None:
    write_atomically(tmp_path / "new.yaml", "a: 1\n")
    assert (tmp_path / "new.yaml").read_text(encoding="utf-8") == "a: 1\n"


def test_write_atomically_writes_through_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "real.yaml").write_text("old\n", encoding="utf-8")
    (tmp_path / "link.yaml").symlink_to("real.yaml")
    write_atomically(tmp_path / "link.yaml", "new\n")
    assert (tmp_path / "link.yaml").is_symlink()
    assert (tmp_path / "real.yaml").read_text(encoding="utf-8") == "new\n"


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_a_failed_write_leaves_the_original_and_no_temporary_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str) -> None:
    path = tmp_path / "staging.yaml"
    path.write_text("original\n", encoding="utf-8")

    def fail(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(environment_writer.os, failing, fail)
    with pytest.raises(OSError, match="No space left"):
        write_atomically(path, "new\n")
    monkeypatch.undo()
    assert path.read_text(encoding="utf-8") == "original\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["staging.yaml"]


# --- property: random edits keep every comment that is not about an edited value -------------------

MODELS = ("alpha", "beta", "gamma")
VERSIONS = st.sampled_from(["1.0.0", "1.1.0", "2.0.0", "10.2.3"])
INSTANTS = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1),
                        timezones=st.just(timezone.utc))
VALUES = {"stable": VERSIONS, "candidate": VERSIONS, "standby": VERSIONS, "standby_until": INSTANTS,
          "stage": st.integers(0, 5), "stage_started_at": INSTANTS, "deadline_paged_at": INSTANTS}


@st.composite
def environment_files(draw: st.DrawFn) -> tuple[str, dict[str, dict[str, object]]]:
    """A file with every kind of comment and blank line around the models' keys, and its data."""
    lines = ["# header", "cluster:", "  name: llm-test   # the cluster", "gpu_pools:",
             "  - name: a100", "    max_nodes: 3   # capacity", ""]
    models: dict[str, dict[str, object]] = {}
    lines.append("models:")
    for model in MODELS:
        if draw(st.booleans()):
            lines.append(f"  # above {model}")
        lines.append(f"  {model}:" + (f"   # eol {model}" if draw(st.booleans()) else ""))
        keys = [k for k in POINTER_KEYS if k == "stable" or draw(st.booleans())] + ["pool", "replicas"]
        data: dict[str, object] = {}
        for key in keys:
            value = draw(VALUES[key]) if key in VALUES else ("a100" if key == "pool" else 2)
            value = value.replace(microsecond=0) if isinstance(value, datetime) else value
            data[key] = value
            if draw(st.booleans()):
                lines.append("")
            if draw(st.booleans()):
                lines.append(f"    # above {model}.{key}")
            rendered = (f'"{value}"' if isinstance(value, str) and key != "pool" else
                        value.strftime("%Y-%m-%dT%H:%M:%SZ") if isinstance(value, datetime) else str(value))
            lines.append(f"    {key}: {rendered}" + (f"   # eol {model}.{key}" if draw(st.booleans()) else ""))
        models[model] = data
        if draw(st.booleans()):
            lines.append("")
    lines.append("# trailing")
    return "\n".join(lines) + "\n", models


EDITS = st.lists(st.tuples(st.sampled_from(MODELS), st.sampled_from(POINTER_KEYS), st.booleans(), st.data()),
                 min_size=1, max_size=8)


def _line_of(lines: list[str], model: str, key: str) -> int | None:
    start = next(i for i, line in enumerate(lines) if line.split("#")[0].rstrip() == f"  {model}:")
    for i in range(start + 1, len(lines)):
        if lines[i].startswith("  ") and not lines[i].startswith("    ") and not lines[i].lstrip().startswith("#"):
            return None
        if lines[i].startswith(f"    {key}:"):
            return i
    return None


@SETTINGS
@given(environment_files(), EDITS)
def test_random_edits_keep_every_comment_of_untouched_keys_and_load_back(
        file: tuple[str, dict[str, dict[str, object]]],
        edits: list[tuple[str, str, bool, st.DataObject]]) -> None:
    text, expected = file
    original_lines = text.splitlines()
    touched: set[tuple[str, str]] = set()  # keys whose value changed or was removed: their eol comment goes
    removed: set[tuple[str, str]] = set()  # keys removed at some point: a re-added key has no comment above
    for model, key, remove, data in edits:
        value = None if remove else data.draw(VALUES[key])
        old = expected[model].get(key)
        if value is None:
            expected[model].pop(key, None)
            removed.add((model, key))
        else:
            expected[model][key] = value.replace(microsecond=0) if isinstance(value, datetime) else value
        if old != expected[model].get(key):
            touched.add((model, key))
        text = update_models(text, {model: {key: value}})

    lines = text.splitlines()
    assert parse_yaml(text.encode()).data["models"] == expected
    prefix = original_lines[:original_lines.index("models:") + 1]
    assert lines[:len(prefix)] == prefix
    full_line_comments = [line for line in original_lines if line.lstrip().startswith("#")]
    assert [line for line in lines if line.lstrip().startswith("#")] == full_line_comments
    assert lines.count("") == original_lines.count("")
    for model, data in expected.items():
        for key in data:
            at = _line_of(lines, model, key)
            assert at is not None, f"{model}.{key} missing"
            before = _line_of(original_lines, model, key)
            if before is None:
                continue
            comment_above = f"    # above {model}.{key}"
            if original_lines[before - 1] == comment_above and (model, key) not in removed:
                assert lines[at - 1] == comment_above
            if "# eol" in original_lines[before] and (model, key) not in touched:
                assert lines[at] == original_lines[before]


# --- one parse for a pass's edits: the same bytes as one edit after another ----------------------------

STEPS = st.lists(st.lists(st.tuples(st.sampled_from(MODELS), st.sampled_from(POINTER_KEYS), st.booleans(), st.data()),
                          min_size=1, max_size=3), min_size=1, max_size=6)


def _folded(text: str, steps: list[dict[str, dict[str, object]]]) -> list[str]:
    """The texts of one update_models after another: what an applying pass made before one parse."""
    return list(accumulate(steps, update_models, initial=text))[1:]


@SETTINGS
@given(environment_files(), STEPS)
def test_edits_in_sequence_give_the_bytes_of_one_update_after_another_from_one_parse(
        file: tuple[str, dict[str, dict[str, object]]],
        drawn: list[list[tuple[str, str, bool, st.DataObject]]]) -> None:
    text, _ = file
    steps = []
    for step in drawn:
        changes: dict[str, dict[str, object]] = {}
        for model, key, remove, data in step:
            changes.setdefault(model, {})[key] = None if remove else data.draw(VALUES[key])
        steps.append(changes)
    expected = _folded(text, steps)
    with pytest.MonkeyPatch.context() as patch:  # the spliced path, not the fallback, must give them
        patch.setattr(environment_writer, "_fold", lambda *a: pytest.fail("fell back to one parse per step"))
        assert environment_writer.update_models_in_sequence(text, steps) == expected


@pytest.mark.parametrize("rel", [STAGING, PROD])
def test_a_pass_over_the_example_files_gives_the_bytes_of_one_update_after_another(rel: str) -> None:
    text = example(rel)
    models = list(parse_yaml(text.encode()).data["models"])
    steps = [{models[0]: {"stage": 3, "stage_started_at": NOW}}, {models[-1]: {"standby": None, "standby_until": None}},
             {models[0]: promote("1.2.0", "1.3.0")}, {models[-1]: {"candidate": "9.0.0", "stage": 0}}]
    assert environment_writer.update_models_in_sequence(text, steps) == _folded(text, steps)


def test_a_file_that_does_not_dump_back_to_itself_is_edited_one_step_at_a_time() -> None:
    text = "models:\n  alpha:\n    stable:   \"1.0.0\"\n    stage: 1\n  beta: {stable: \"2.0.0\"}\n"
    steps = [{"alpha": {"stage": 2}}, {"beta": {"stable": "2.1.0"}}, {"alpha": {"stage": 3}}]
    assert environment_writer.update_models_in_sequence(text, steps) == _folded(text, steps)


def test_edits_in_sequence_refuse_an_unknown_model_before_any_text_is_made() -> None:
    with pytest.raises(KeyError, match="delta"):
        environment_writer.update_models_in_sequence(example(STAGING), [{CHAT: {"stage": 2}}, {"delta": {"stage": 1}}])
