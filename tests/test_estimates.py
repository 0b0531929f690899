"""The answer with its uncertainty: intervals over languages, calibrated by simulation with a known
truth; the pairings (the unseeded pretrained encoder, the encoder before target fine-tuning), English
left out, fine-tuned encoders kept apart, and what an interval decides."""

import json

import numpy as np
import pandas as pd
import pytest

from stilts_core.analysis.estimates import (
    alignment_gains_by_layer,
    answer_table,
    decides,
    fine_tuning_alignment_change,
    language_interval,
    mean_gains,
)
from stilts_core.runs.results import make_frame

LANGUAGES = ["ar", "bg", "de", "el", "es", "fi", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh"]


def row(intermediate, language, seed, value, target="xnli", metric="accuracy", **settings):
    return {"model": "m", "intermediate_task": intermediate, "target_task": target,
            "language": language, "seed": seed, "split": "test", "metric": metric, "value": value,
            "provenance": "smoke run", "run_id": f"r-{intermediate}-{seed}",
            "settings": json.dumps(settings, sort_keys=True)}


# --- calibration: a known mean gain, language effects, seed noise --------------------------------

def simulated_gains(rng, mean, languages=15, seeds=3):
    """Gains (languages x seeds) with a known mean: each language's own effect (sd 2) is shared by
    its seeds, so the seeds of a language correlate (0.8), plus seed noise (sd 1)."""
    return mean + rng.normal(0, 2, (languages, 1)) + rng.normal(0, 1, (languages, seeds))


def per_language(gains):
    return pd.Series(gains.mean(axis=1), index=LANGUAGES[:len(gains)])


def seeds_as_languages(gains):
    """The naive unit: every language x seed counted as a language of its own."""
    return pd.Series(gains.ravel(), index=[f"{language}-{seed}" for language in LANGUAGES[:len(gains)]
                                           for seed in range(gains.shape[1])])


def coverage(mean, unit, replicates=300):
    """How often the t-interval and the bootstrap interval cover the true mean (each mean its own
    draws)."""
    rng = np.random.default_rng([20240611, round(10 * mean)])
    hits = np.zeros(2)
    for _ in range(replicates):
        found = language_interval(unit(simulated_gains(rng, mean)))
        hits += [found["low"] <= mean <= found["high"],
                 found["bootstrap_low"] <= mean <= found["bootstrap_high"]]
    return hits / replicates


@pytest.mark.parametrize("mean", [0.0, 2.0])
def test_the_interval_over_languages_covers_the_true_mean_at_its_level(mean):
    t_coverage, bootstrap_coverage = coverage(mean, per_language)
    assert 0.90 <= t_coverage <= 0.99
    assert 0.90 <= bootstrap_coverage <= 0.99


def test_counting_seeds_as_languages_would_under_cover():
    t_coverage, _ = coverage(2.0, seeds_as_languages)
    assert t_coverage < 0.88  # about 0.78 in theory: the seeds of a language share its effect


def simulated_table(rng, mean):
    """Scores of direct fine-tuning and of STILTs per language and seed whose gains are
    :func:`simulated_gains`, with an English gain far from them (the training language)."""
    gains = simulated_gains(rng, mean)
    rows = []
    for language, language_gains in zip([*LANGUAGES, "en"], [*gains, np.full(3, 30.0)], strict=True):
        difficulty = rng.normal(0, 5)
        for seed, gain in enumerate(language_gains, start=1):
            base = 60 + difficulty + rng.normal(0, 1)
            rows += [row("none", language, seed, base), row("mnli", language, seed, base + gain)]
    return make_frame(rows), gains


def test_mean_gains_is_the_interval_over_languages_of_the_seed_means():
    rng = np.random.default_rng(3)
    for _ in range(3):
        table, gains = simulated_table(rng, 2.0)
        (found,) = mean_gains(table).to_dict("records")
        expected = language_interval(per_language(gains))
        assert found["languages"] == 15 and found["seeds"] == 3
        for name in ("estimate", "low", "high", "bootstrap_low", "bootstrap_high"):
            assert found[name] == pytest.approx(expected[name])


# --- the interval itself ---------------------------------------------------------------------------

def test_language_interval_of_known_values():
    found = language_interval(pd.Series([1.0, 2.0, 3.0, 4.0], index=list("abcd")))
    assert found["estimate"] == 2.5 and found["languages"] == 4
    assert found["low"] == pytest.approx(0.4458, abs=1e-4)  # 2.5 -/+ t(3) 3.1824 x 1.2910 / 2
    assert found["high"] == pytest.approx(4.5542, abs=1e-4)
    assert np.isnan(found["bootstrap_low"]) and np.isnan(found["bootstrap_high"])  # too few


def test_the_bootstrap_t_follows_the_t_interval_and_leans_toward_a_long_tail():
    symmetric = language_interval(pd.Series(np.random.default_rng(5).normal(2, 1, 15),
                                            index=LANGUAGES[:15]))
    t_width = symmetric["high"] - symmetric["low"]
    assert symmetric["bootstrap_high"] - symmetric["bootstrap_low"] == pytest.approx(t_width,
                                                                                     rel=0.25)
    values = pd.Series(np.random.default_rng(6).lognormal(0, 1, 12), index=LANGUAGES[:12])
    skewed = language_interval(values)
    # a long right tail: the mean could be much higher, less so lower
    assert skewed["bootstrap_high"] > skewed["high"]
    assert skewed["estimate"] - skewed["bootstrap_low"] < skewed["bootstrap_high"] - skewed["estimate"]
    assert language_interval(values) == skewed
    # one language far from nine equal ones: a third of the resamples miss it and have no
    # spread, and the interval is unbounded on its side
    outlier = language_interval(pd.Series([0.0] * 9 + [10.0], index=LANGUAGES[:10]))
    assert outlier["bootstrap_high"] == np.inf and np.isfinite(outlier["bootstrap_low"])


def test_one_language_has_no_interval_and_decides_nothing():
    found = language_interval(pd.Series([3.0], index=["de"]))
    assert found["estimate"] == 3.0 and np.isnan(found["low"]) and np.isnan(found["high"])
    assert decides(found["low"], found["high"]) == "undecided"


def test_seeds_passed_as_languages_are_refused():
    with pytest.raises(ValueError, match="one value per language"):
        language_interval(pd.Series([1.0, 2.0, 3.0], index=["de", "de", "fi"]))


@pytest.mark.parametrize(("low", "high", "decision"), [
    (0.1, 2.0, "positive"), (-2.0, -0.1, "negative"), (-1.0, 1.0, "undecided"),
    (0.0, 1.0, "undecided"), (-1.0, 0.0, "undecided")])
def test_decides_reads_the_sign_an_interval_excludes(low, high, decision):
    assert decides(low, high) == decision


# --- pairing ----------------------------------------------------------------------------------------

PRETRAINED = {0: {"de": 10, "fi": 20, "sw": 30, "en": 90}, 2: {"de": 40, "fi": 50, "sw": 60, "en": 95}}
PHASE_TWO = {0: {"de": 1, "fi": 1, "sw": 1, "en": 0}, 2: {"de": 5, "fi": 4, "sw": 3, "en": -40}}
AFTER_DIRECT = {0: {"de": 0, "fi": 0, "sw": 0, "en": 0}, 2: {"de": -10, "fi": -12, "sw": -14, "en": 0}}
AFTER_STILTS = {0: {"de": 0, "fi": 0, "sw": 0, "en": 0}, 2: {"de": -2, "fi": -3, "sw": -4, "en": 0}}
RETRIEVAL = {"layer": 2, "pooling": "mean", "protocol": "encoder"}


@pytest.fixture(scope="module")
def table():
    """Three languages and English: transfer on xnli (gains 3, 2, 4; English 10); Tatoeba at the
    retrieval layer against the unseeded pretrained encoder (gains 3, 2, 1), and after
    fine-tuning on xnli (gain 20); alignment at layers 0 and 2 of the pretrained encoder, of mnli
    (seed 2 two points above seed 1), and after fine-tuning on xnli (directly: both seeds, seed s
    s points above; after mnli: seed 1 only)."""
    rows = []
    for language, (transfer, tatoeba, base) in {"de": (3, 3, 50), "fi": (2, 2, 40), "sw": (4, 1, 20),
                                                "en": (10, 0, 99)}.items():
        rows.append(row("none", language, None, base, "tatoeba", **RETRIEVAL))
        for seed in (1, 2):
            shift = seed - 1.5
            rows += [row("none", language, seed, 60 + shift),
                     row("mnli", language, seed, 60 + shift + transfer),
                     row("mnli", language, seed, base + tatoeba + shift, "tatoeba", **RETRIEVAL)]
        rows += [row("none", language, 1, 60, "tatoeba", fine_tuned_on="xnli", **RETRIEVAL),
                 row("mnli", language, 1, 80, "tatoeba", fine_tuned_on="xnli", **RETRIEVAL)]
        for layer in (0, 2):
            aligned = {"metric": "alignment_retrieval_accuracy", "target": "tatoeba", "layer": layer}
            pretrained = PRETRAINED[layer][language]
            rows.append(row("none", language, None, pretrained, **aligned))
            for seed in (1, 2):
                phase_two = pretrained + PHASE_TWO[layer][language] + 2 * (seed - 1)
                rows += [row("mnli", language, seed, phase_two, **aligned),
                         row("none", language, seed, pretrained + AFTER_DIRECT[layer][language] + seed,
                             fine_tuned_on="xnli", **aligned)]
            rows.append(row("mnli", language, 1, pretrained + PHASE_TWO[layer][language]
                            + AFTER_STILTS[layer][language], fine_tuned_on="xnli", **aligned))
    return make_frame(rows)


def test_gains_pair_the_unseeded_pretrained_encoder_with_every_seed_and_leave_english_out(table):
    gains = mean_gains(table).set_index(["fine_tuned_on", "target_task"])
    transfer, tatoeba = gains.loc[("", "xnli")], gains.loc[("", "tatoeba")]
    assert transfer["estimate"] == pytest.approx(3.0) and transfer["languages"] == 3  # not English's 10
    assert tatoeba["estimate"] == pytest.approx(2.0) and tatoeba["seeds"] == 2
    assert tatoeba["high"] - tatoeba["estimate"] == pytest.approx(4.3027 / np.sqrt(3), abs=1e-4)
    assert tatoeba["protocol"] == "encoder" and transfer["protocol"] == ""


def test_fine_tuned_encoders_are_their_own_quantities(table):
    gains = mean_gains(table).set_index(["fine_tuned_on", "target_task"])
    assert gains.loc[("xnli", "tatoeba"), "estimate"] == pytest.approx(20.0)
    assert gains.loc[("xnli", "tatoeba"), "seeds"] == 1
    by_layer = alignment_gains_by_layer(table).set_index("layer")
    assert list(by_layer["measure"]) == ["retrieval_accuracy"] * 2
    assert by_layer.loc[2, "estimate"] == pytest.approx(5.0)  # (5 + 4 + 3) / 3 + the seed mean 1
    assert by_layer.loc[0, "estimate"] == pytest.approx(2.0) and by_layer.loc[2, "languages"] == 3


def test_fine_tuning_change_is_against_the_same_encoder_before_it(table):
    change = fine_tuning_alignment_change(table).set_index(["intermediate_task", "layer"])
    assert set(change["fine_tuned_on"]) == {"xnli"}
    assert change.loc[("none", 2), "estimate"] == pytest.approx(-12.0 + 1.5)  # pretrained, each seed
    assert change.loc[("none", 2), "seeds"] == 2
    assert change.loc[("mnli", 2), "estimate"] == pytest.approx(-3.0)  # seed 1's own encoder
    assert change.loc[("mnli", 2), "seeds"] == 1 and change.loc[("mnli", 0), "estimate"] == 0.0


def test_answer_table_states_each_quantity_and_what_it_decides(table):
    answer = answer_table(table).set_index("quantity")
    assert list(answer.columns) == ["provenance", "model", "protocol", "target_task",
                                    "intermediate_task", "fine_tuned_on", "estimate", "interval",
                                    "bootstrap_interval", "languages", "seeds", "decides"]
    transfer = answer.loc["xnli transfer gain from mnli"]
    assert transfer["decides"] == "positive" and transfer["interval"] == "0.52 to 5.48"
    tatoeba = answer.loc["alignment gain at the retrieval layer (tatoeba accuracy) from mnli"]
    assert tatoeba["decides"] == "undecided" and tatoeba["interval"] == "-0.48 to 4.48"
    assert answer.loc["retrieval_accuracy change at top layer 2 from fine-tuning on xnli "
                      "(mnli encoder)", "decides"] == "negative"
    assert answer.loc["retrieval_accuracy change at top layer 2 from fine-tuning on xnli "
                      "(pretrained encoder)", "decides"] == "negative"
    assert len(answer) == 4  # no layer 0, no fine-tuned Tatoeba row


def test_two_settings_of_one_score_are_refused_not_averaged(table):
    extra = make_frame([row("none", "de", 1, 60, max_length=128),
                        row("mnli", "de", 1, 70, max_length=128)])
    with pytest.raises(ValueError, match="several settings"):
        mean_gains(pd.concat([table, extra], ignore_index=True))
