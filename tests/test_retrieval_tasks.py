"""The release-format readers of BUCC, Mewsli-X and LAReQA, the dual encoder, and the
retrieval and alignment phases on the tiny model."""

import json

import datasets
import numpy as np
import pytest
from release_files import write_bucc, write_mewslix, write_xquad_r

from stilts_core.data.releases import (
    load_mining_corpus,
    load_ranking_set,
    load_training_pairs,
    mewslix_mention_text,
    sentence_breaks,
    squad_training_pairs,
)
from stilts_core.data.sources import DataSourceError, DataSources
from stilts_core.phases.alignment import alignment
from stilts_core.phases.params import ParameterError, validate_params
from stilts_core.phases.retrieval import retrieval
from stilts_core.tasks.registry import get_task


def test_bucc_reader_maps_sample_to_dev_and_training_to_test(tmp_path):
    write_bucc(tmp_path, "de", pairs=5, extra=2)
    task = get_task("bucc2018")
    dev = load_mining_corpus(task, "validation", "de", tmp_path)
    test = load_mining_corpus(task, "test", "de", tmp_path)
    assert len(dev.source_ids) == 7 and len(dev.target_ids) == 7 and len(dev.gold) == 5
    assert ("de-000000000", "en-000000000") in test.gold
    assert dev.source_texts != test.source_texts  # two different splits
    (tmp_path / "bucc2018" / "de-en.training.gold").write_text("de-000000000\ten-999\n")
    with pytest.raises(DataSourceError, match=r"training\.gold: 1 gold pair"):
        load_mining_corpus(task, "test", "de", tmp_path)
    (tmp_path / "bucc2018" / "de-en.training.de").write_text("only-one-field\n")
    with pytest.raises(DataSourceError, match=r"training\.de, line 1: expected 2"):
        load_mining_corpus(task, "test", "de", tmp_path)
    with pytest.raises(DataSourceError, match=r"fr-en\.dev\.fr: no fr sentences"):
        load_mining_corpus(task, "validation", "fr", tmp_path)


def test_mewslix_reader_builds_marked_mentions_and_one_pool(tmp_path):
    write_mewslix(tmp_path)
    ranking_set = load_ranking_set(get_task("mewslix"), "test", tmp_path)
    assert len(ranking_set.candidate_ids) == 16 and len(ranking_set.query_ids) == 18
    first = ranking_set.query_texts[0]
    name = first.split(":")[0]
    assert first.startswith(f"{name}: ") and f"{{ {name} }}" in first
    assert "Intro" not in first and "Outro" not in first  # only the mention's sentence
    assert ranking_set.candidate_texts[0] == "Anna is a person. Anna likes books."
    assert all(len(r) == 1 for r in ranking_set.relevant)
    pairs = load_training_pairs(get_task("mewslix"), DataSources(tmp_path))
    assert len(pairs.queries) == 24 and pairs.candidates[0].endswith("likes books.")
    with pytest.raises(DataSourceError, match=r"Mewsli-X is built from.*data_roots="):
        load_training_pairs(get_task("mewslix"), DataSources())


def test_mewslix_mention_text_follows_xtreme_r():
    context = {"text": "A {b} c. Anna went home. End.",
               "sentence_spans": [{"start": 0, "end": 8}, {"start": 9, "end": 24}]}
    mention = {"mention_span": {"start": 9, "end": 13}}
    assert mewslix_mention_text(context, mention) == "Anna: { Anna } went home."
    brace = {"mention_span": {"start": 0, "end": 1}}
    assert mewslix_mention_text(context, brace) == "A: { A } (b) c."


def test_lareqa_pool_has_every_sentence_and_eleven_relevant_answers(tmp_path):
    write_xquad_r(tmp_path, paragraphs=3)
    task = get_task("lareqa")
    ranking_set = load_ranking_set(task, "test", tmp_path)
    assert len(ranking_set.candidate_ids) == 11 * 3 * 2
    assert len(ranking_set.query_ids) == 11 * 3
    assert all(len(relevant) == 11 for relevant in ranking_set.relevant)
    assert all(uid.split("_")[2] == "1" for uid in ranking_set.relevant[0])  # second sentence
    # the candidate text is the sentence followed by its paragraph, as XTREME-R encodes it
    paragraph = json.loads((tmp_path / "lareqa" / "ar.json").read_text())["data"][0][
        "paragraphs"][0]
    start, end = paragraph["sentence_breaks"][1]
    assert ranking_set.candidate_texts[1] == paragraph["context"][start:end] + paragraph["context"]
    (tmp_path / "lareqa" / "th.json").unlink()
    with pytest.raises(DataSourceError, match=r"lareqa/th\.json: no XQuAD-R th file"):
        load_ranking_set(task, "test", tmp_path)


def test_sentence_breaks_and_squad_training_pairs():
    text = 'He left. "Why?" she asked. It was 5 p.m. and late!'
    spans = sentence_breaks(text)
    assert [text[s:e] for s, e in spans] == ["He left.", '"Why?" she asked.',
                                            "It was 5 p.m. and late!"]
    squad = datasets.Dataset.from_list([
        {"id": "1", "context": text, "question": "Who asked?",
         "answers": {"text": ["she"], "answer_start": [16]}},
        {"id": "2", "context": text, "question": "None?", "answers": {"text": [], "answer_start": []}},
    ])
    pairs = squad_training_pairs(squad)
    assert pairs.queries == ["Who asked?"]
    assert pairs.candidates == ['"Why?" she asked.' + text]


def test_dual_encoder_resumes_to_the_same_weights(tiny_model_path, tmp_path, monkeypatch):
    import torch

    from stilts_core.data.releases import TrainingPairs
    from stilts_core.evaluation.retrieval import RepresentationSettings
    from stilts_core.models.registry import load_tokenizer
    from stilts_core.training import dual_encoder

    pairs = TrainingPairs([f"Who has {n} books?" for n in range(12)],
                          [f"Anna hat {n} Bücher." for n in range(12)], "constructed")
    hyper = dual_encoder.DualEncoderHyperparameters(
        learning_rate=5e-4, batch_size=4, epochs=2, checkpoint_steps=2, query_max_length=16,
        candidate_max_length=16)
    settings = RepresentationSettings(layer=-1, pooling="mean", max_length=16)
    tokenizer = load_tokenizer(tiny_model_path)
    straight = dual_encoder.train_dual_encoder(tiny_model_path, pairs, tokenizer,
                                               tmp_path / "a", settings, hyper, seed=3)
    assert straight["steps"] == 6 and not (tmp_path / "a" / "checkpoints").exists()

    original = dual_encoder.PairBatches.__getitem__

    def crash_at_the_sixth_batch(self, index):
        if index == 5:  # fetched one step ahead: steps 1-4 done, checkpoints at 2 and 4
            raise KeyboardInterrupt("simulated crash")
        return original(self, index)

    monkeypatch.setattr(dual_encoder.PairBatches, "__getitem__", crash_at_the_sixth_batch)
    with pytest.raises(KeyboardInterrupt):
        dual_encoder.train_dual_encoder(tiny_model_path, pairs, tokenizer, tmp_path / "b",
                                        settings, hyper, seed=3)
    monkeypatch.setattr(dual_encoder.PairBatches, "__getitem__", original)
    resumed = dual_encoder.train_dual_encoder(tiny_model_path, pairs, tokenizer, tmp_path / "b",
                                              settings, hyper, seed=3, progress_dir=tmp_path)
    assert resumed["resumed_from"] == "checkpoint-4"  # a name: the folder is deleted
    lines = (tmp_path / "progress.log").read_text().splitlines()  # 3 steps an epoch
    assert lines[0].startswith(f"[stilts] {tmp_path.name}: train dual encoder step 5/6 (83%), ")
    assert lines[0].endswith(", epoch 1.67") and ", loss " in lines[0]
    assert lines[-1].startswith(f"[stilts] {tmp_path.name}: train dual encoder step 6/6 (100%), ")
    assert lines[-1].endswith(", epoch 2.00")
    assert resumed["final_loss"] == pytest.approx(straight["final_loss"])
    from transformers import AutoModel

    a = AutoModel.from_pretrained(tmp_path / "a" / "encoder").state_dict()
    b = AutoModel.from_pretrained(tmp_path / "b" / "encoder").state_dict()
    assert all(torch.equal(a[key], b[key]) for key in a)
    history = json.loads((tmp_path / "b" / "train_log.json").read_text())
    assert [h["step"] for h in history] == list(range(1, 7))


def test_batch_order_is_a_function_of_the_seed():
    from stilts_core.training.dual_encoder import batch_order

    first = batch_order(10, 4, 1.5, seed=1)
    assert len(first) == 3 and all(len(b) == 4 for b in first)
    assert all(np.array_equal(a, b) for a, b in zip(first, batch_order(10, 4, 1.5, seed=1),
                                                    strict=True))
    with pytest.raises(ValueError, match="at least batch_size"):
        batch_order(3, 4, 1, seed=1)


# --- the phases on the tiny model ---------------------------------------------------------------

def _rows(run_dir):
    from stilts_core.runs.results import read_run_results

    return read_run_results(run_dir)


def test_bucc_phase_records_dev_test_and_oracle(tiny_model_path, tmp_path):
    write_bucc(tmp_path / "data", "de")
    run_dir = tmp_path / "run"
    metrics = retrieval({"model": "tiny-xlmr", "task": "bucc2018", "languages": ["de"],
                                "data_root": str(tmp_path / "data"), "layer": -1}, str(run_dir))
    rows = _rows(run_dir)
    assert set(zip(rows["split"], rows["metric"], strict=True)) == {
        ("test", "f1"), ("test", "precision"), ("test", "recall"), ("test", "oracle_f1"),
        ("validation", "f1"), ("validation", "precision"), ("validation", "recall")}
    settings = json.loads(rows["settings"][0])
    assert settings["margin"] == "ratio" and settings["margin_k"] == 4 and settings["layer"] == -1
    assert np.isfinite(metrics["de"]["threshold"])
    lines = (run_dir / "predictions" / "test-de.jsonl").read_text().splitlines()
    assert sum('"label"' in line for line in lines) == 12
    progress = (run_dir / "progress.log").read_text().splitlines()
    assert progress and all(line.startswith("[stilts] run: encoded ") and ", ETA " in line
                            for line in progress)


def test_ranking_phase_both_protocols(tiny_model_path, tmp_path):
    write_mewslix(tmp_path / "data")
    base = {"model": "tiny-xlmr", "task": "mewslix", "data_root": str(tmp_path / "data"),
            "layer": -1, "max_length": 32, "candidate_max_length": 32}
    metrics = retrieval(base, str(tmp_path / "encoder"))
    assert set(metrics) >= {"de", "en", "es"} and 0 <= metrics["de"]["map_at_20"] <= 100
    metrics = retrieval({**base, "protocol": "dual_encoder", "dual_batch_size": 4,
                                "dual_max_steps": 3}, str(tmp_path / "dual"))
    assert metrics["dual_encoder"]["steps"] == 3
    rows = _rows(tmp_path / "dual")
    assert set(rows["seed"]) == {1}
    assert json.loads(rows["settings"][0])["protocol"] == "dual_encoder"
    with pytest.raises(ParameterError, match="dual_encoder.*ranking tasks"):
        validate_params("retrieval", {"task": "tatoeba", "protocol": "dual_encoder"})


def test_lareqa_phase_scores_each_question_language(tiny_model_path, tmp_path):
    write_xquad_r(tmp_path / "data")
    metrics = retrieval({"model": "tiny-xlmr", "task": "lareqa", "layer": -1,
                                "data_root": str(tmp_path / "data")}, str(tmp_path / "run"))
    assert set(get_task("lareqa").languages) <= set(metrics)
    assert metrics["th"]["candidates"] == 66 and metrics["th"]["queries"] == 3


def test_alignment_phase_writes_every_layer_and_measure(tiny_model_path, fixtures_root, tmp_path):
    from stilts_core.evaluation.alignment import MEASURES
    from stilts_core.runs.results import setting

    alignment({"model": "tiny-xlmr", "languages": ["de", "fr"], "max_length": 64,
                      "data_root": str(fixtures_root)}, str(tmp_path / "run"))
    rows = _rows(tmp_path / "run")
    assert sorted(set(setting(rows, "layer"))) == [0, 1, 2]  # the tiny model has 2 layers
    assert set(rows["metric"]) == {f"alignment_{name}" for name in MEASURES}
    assert len(rows) == 2 * 3 * len(MEASURES)
    assert rows["seed"].isna().all() and set(rows["intermediate_task"]) == {"none"}
    progress = [line.split(", ") for line in
                (tmp_path / "run" / "progress.log").read_text().splitlines()]
    assert [(line[0], line[-1]) for line in progress] == [
        ("[stilts] run: score tatoeba language 1/2 (50%)", "de scored"),
        ("[stilts] run: score tatoeba language 2/2 (100%)", "fr scored")]
