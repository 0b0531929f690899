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


SMALL = {"model": "tiny-xlmr", "smoke": True, "max_length": 64, "pooling": "mean",
         "include_special_tokens": False}


def test_the_alignment_pass_scores_retrieval_as_a_retrieval_run_does(tmp_path, tiny_model_path):
    """One encoding pass serves both: the Tatoeba rows an alignment run writes at its
    retrieval layer equal, value and settings, those of a retrieval run of that layer."""
    from stilts_core.phases.alignment import alignment
    from stilts_core.phases.retrieval import retrieval
    from stilts_core.runs.results import read_run_results

    alignment({**SMALL, "retrieval_layer": 2}, run_dir=str(tmp_path / "alignment"))
    retrieval({**SMALL, "layer": 2, "candidate_max_length": 64}, run_dir=str(tmp_path / "retrieval"))
    key = ["language", "metric", "settings"]
    aligned = read_run_results(tmp_path / "alignment")
    aligned = aligned[aligned["metric"].isin(["accuracy", "accuracy_en_to_xx"])].set_index(key)
    retrieved = read_run_results(tmp_path / "retrieval").set_index(key)
    assert len(aligned) == len(retrieved) == 6  # 3 fixture languages, both directions
    assert aligned["value"].sort_index().equals(retrieved["value"].sort_index())
    assert (tmp_path / "alignment" / "predictions" / "test-de.jsonl").is_file()


def test_the_encoder_left_by_target_fine_tuning_is_aligned_as_the_third_point(
        tmp_path, monkeypatch, tiny_model_path):
    import json

    from stilts_core.phases.params import ParameterError, validate_params
    from stilts_core.runs.execution import execute_phase
    from stilts_core.runs.results import read_run_results

    monkeypatch.setenv("STILTS_RUNS_DIR", str(tmp_path / "runs"))
    target = execute_phase("target", validate_params("target", {
        "model": "tiny-xlmr", "smoke": True, "max_length": 32, "task": "xnli", "seed": 3,
        "max_steps": 2, "batch_size": 8}))
    after = execute_phase("alignment", validate_params("alignment", {
        **SMALL, "target_run": target.name, "languages": ["de"]}))
    rows = read_run_results(after)
    assert set(rows["intermediate_task"]) == {"none"} and set(rows["seed"]) == {3}
    assert {json.loads(s)["fine_tuned_on"] for s in rows["settings"]} == {"xnli"}
    assert json.loads((after / "metrics.json").read_text())["fine_tuned_on"] == "xnli"
    with pytest.raises(ParameterError, match="encoder_run or target_run, not both"):
        validate_params("alignment", {**SMALL, "target_run": target.name, "encoder_run": "x"})


def test_a_target_stage_trained_before_the_learning_check_is_refused_on_resume(
        tmp_path, monkeypatch, tiny_model_path):
    import json

    from stilts_core.phases.params import validate_params
    from stilts_core.runs.execution import DONE, RunError, execute_phase

    monkeypatch.setenv("STILTS_RUNS_DIR", str(tmp_path / "runs"))
    params = validate_params("target", {"model": "tiny-xlmr", "smoke": True, "max_length": 32,
                                        "task": "xnli", "seed": 3, "max_steps": 2,
                                        "batch_size": 8})
    run = execute_phase("target", params)
    (stage_metrics,) = run.glob("stages/*/stage_metrics.json")
    older = json.loads(stage_metrics.read_text())
    del older["learning"]
    stage_metrics.write_text(json.dumps(older))
    (run / DONE).unlink()
    with pytest.raises(RunError, match="ParameterError: .*stage_metrics.json has no field "
                                       "'learning'.*--force"):
        execute_phase("target", params)
