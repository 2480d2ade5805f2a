"""The pure comparisons of two answers (reconciler/evaluator/compare.py)."""

from __future__ import annotations

import pytest

from reconciler.evaluator.compare import (
    compare,
    is_refusal,
    is_valid_json,
    length_ratio,
    normalise,
    similarity,
)
from reconciler.evaluator.openai_api import Answer


def answer(text: str) -> Answer:
    return Answer(text, latency_s=0.1)


def test_normalise_folds_case_punctuation_and_whitespace() -> None:
    assert normalise("  Paris,\u00a0France! ") == "paris france"
    assert normalise("ＡＢＣ") == "abc"  # NFKC: full-width letters are letters


@pytest.mark.parametrize(("a", "b", "expected"), [
    ("the cat sat", "the cat sat down", 1 - 5 / 27),  # the docstring's worked example
    ("Paris.", "paris", 1.0),
    ("", "", 1.0),
    ("abc", "", 0.0),
    ("abc", "xyz", 0.0),
])
def test_similarity(a: str, b: str, expected: float) -> None:
    assert similarity(a, b) == pytest.approx(expected)


def test_length_ratio_is_candidate_over_stable_with_stable_floored_at_one() -> None:
    assert length_ratio("abcd", "ab") == 0.5
    assert length_ratio("ab", "abcd") == 2.0
    assert length_ratio("", "abc") == 3.0
    assert length_ratio("", "") == 0.0


@pytest.mark.parametrize("text", [
    "I'm sorry, but I can't help with that.",
    "I’m sorry, but I can’t help with that.",  # typographic apostrophes
    "I cannot assist with that request.",
    "Sorry, I am unable to comply with this.",
    "As an AI language model, I cannot give medical advice.",
    "I won't provide instructions for that.",
    "That request goes against my guidelines.",
])
def test_refusals_are_recognised(text: str) -> None:
    assert is_refusal(text)


@pytest.mark.parametrize("text", [
    "Sure! Here is how to bake bread.",
    "I can help with that: first, preheat the oven.",
    "I am sorry to hear that. Here is what you can do.",
    "The function cannot return None.",
    "",
])
def test_answers_are_not_refusals(text: str) -> None:
    assert not is_refusal(text)


def test_a_refusal_late_in_a_long_answer_is_not_a_refusal() -> None:
    assert not is_refusal("Here is the recipe. " * 20 + "I can't help with the rest.")


@pytest.mark.parametrize(("text", "valid"), [
    ('{"a": 1}', True), ('  [1, 2]\n', True), ('"text"', True),
    ('{"a": 1', False), ('```json\n{"a": 1}\n```', False), ("", False), ('{"a": 1} trailing', False),
])
def test_json_validity_is_the_whole_answer(text: str, valid: bool) -> None:
    assert is_valid_json(text) is valid


def test_compare_identical_answers() -> None:
    result = compare(answer("Paris."), answer("Paris."), expects_json=False)
    assert (result.exact_match, result.normalized_match, result.similarity, result.length_ratio) == (True, True, 1.0, 1.0)
    assert not result.divergent
    assert result.stable.json_valid is None and result.candidate.json_valid is None


def test_compare_loose_match_and_divergence() -> None:
    loose = compare(answer("Paris."), answer("paris"), expects_json=False)
    assert (loose.exact_match, loose.normalized_match) == (False, True)
    apart = compare(answer("The capital is Paris."), answer("I'm sorry, but I can't help with that."),
                    expects_json=False)
    assert apart.divergent and apart.similarity < 0.6
    assert apart.candidate.refused and not apart.stable.refused


def test_the_divergence_threshold_is_the_callers() -> None:
    pair = (answer("the cat sat"), answer("the cat sat down"))  # similarity 0.81
    assert not compare(*pair, expects_json=False, divergence_threshold=0.8).divergent
    assert compare(*pair, expects_json=False, divergence_threshold=0.9).divergent


def test_json_is_checked_per_version_when_expected() -> None:
    result = compare(answer('{"city": "Paris"}'), answer("city: Paris"), expects_json=True)
    assert result.stable.json_valid is True and result.candidate.json_valid is False


def test_a_failed_call_is_not_compared() -> None:
    with pytest.raises(ValueError, match="counted as an error"):
        compare(answer("x"), Answer("", 0.0, error="timeout"), expects_json=False)
