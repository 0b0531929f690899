import numpy as np
import pytest

from stilts_core.evaluation.alignment import (
    MEASURES,
    alignment_scores,
    centred_retrieval_accuracy,
    cosine_gap,
    linear_cka,
    retrieval_accuracy,
)
from stilts_core.evaluation.retrieval import normalise


def _parallel(seed: int = 0, n: int = 30, d: int = 12, noise: float = 0.5):
    rng = np.random.default_rng(seed)
    english = rng.normal(size=(n, d))
    return normalise(english + noise * rng.normal(size=(n, d))), normalise(english)


def test_linear_cka_is_one_for_identical_and_invariant_to_rotation_and_scaling():
    source, english = _parallel()
    assert linear_cka(english, english) == pytest.approx(1.0)
    rotation, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(12, 12)))
    assert linear_cka(english @ rotation, english) == pytest.approx(1.0)
    assert linear_cka(source @ rotation * 3.7, english) == pytest.approx(linear_cka(source, english))
    unrelated = np.random.default_rng(2).normal(size=(30, 12))
    assert linear_cka(unrelated, english) < linear_cka(source, english)


def test_cosine_gap_equals_the_brute_force_definition():
    source, english = _parallel()
    similarity = source @ english.T
    n = len(source)
    brute = np.trace(similarity) / n - (similarity.sum() - np.trace(similarity)) / (n * (n - 1))
    assert cosine_gap(source, english) == pytest.approx(brute)
    assert cosine_gap(english, english) > cosine_gap(source, english) > 0


def test_centred_retrieval_removes_a_language_offset():
    """A shared language vector added to every sentence hides the content; subtracting each
    language's mean restores retrieval (Libovický et al. 2020's language-neutral component)."""
    rng = np.random.default_rng(4)
    content = rng.normal(size=(40, 16))
    offset = 25 * rng.normal(size=16)
    source = normalise(content + offset + 0.3 * rng.normal(size=(40, 16)))
    english = normalise(content - offset)
    assert centred_retrieval_accuracy(source, english) == 100.0 > retrieval_accuracy(source, english)


def test_alignment_scores_has_every_measure_and_checks_shapes():
    source, english = _parallel()
    assert set(alignment_scores(source, english)) == set(MEASURES)
    with pytest.raises(ValueError, match="differ in shape"):
        alignment_scores(source[:5], english)
