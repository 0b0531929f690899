"""`stilts grid check`: every input of a grid resolved and checked, hub sources against a
folder laid out like hub repos (the listing and cards a mirror or the hub serves)."""

import pytest
import yaml

from stilts_core.cli import main
from stilts_core.grid.config import GridConfig
from stilts_core.grid.preflight import FolderListing, check_grid, exit_status, grid_needs


def _card(configs: dict[str, dict[str, str]], default: str | None = None) -> str:
    """A dataset card whose YAML header declares configs and their split files, as on the hub."""
    header = {"configs": [{"config_name": name, **({"default": True} if name == default else {}),
                           "data_files": [{"split": split, "path": path}
                                          for split, path in splits.items()]}
                          for name, splits in configs.items()]}
    return f"---\n{yaml.safe_dump(header)}---\n# card\n"


def _repo(root, kind, repo, files: dict[str, str]):
    for name, text in files.items():
        path = root / kind / repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.fixture
def hub(tmp_path):
    """A stand-in with what a one-language XNLI grid on XLM-R Base reads."""
    root = tmp_path / "hub"
    _repo(root, "datasets", "nyu-mll/glue", {
        "README.md": _card({"mnli": {"train": "mnli/train-*.parquet",
                                     "validation_matched": "mnli/validation_matched-*.parquet"}}),
        "mnli/train-00000-of-00001.parquet": "", "mnli/validation_matched-00000-of-00001.parquet": ""})
    _repo(root, "datasets", "facebook/xnli", {
        "README.md": _card({lang: {"validation": f"{lang}/validation-*", "test": f"{lang}/test-*"}
                            for lang in ("en", "de")}),
        **{f"{lang}/{split}-00000-of-00001.parquet": "" for lang in ("en", "de")
           for split in ("validation", "test")}})
    _repo(root, "models", "FacebookAI/xlm-roberta-base", {"config.json": "{}",
                                                          "sentencepiece.bpe.model": ""})
    return root


def _config(**changes) -> GridConfig:
    return GridConfig(**{"name": "check", "models": ["xlm-roberta-base"], "data_root": "hub",
                         "seeds": [1], "intermediate_tasks": ["none"], "target_tasks": ["xnli"],
                         "languages": {"xnli": ["de"]}, **changes})


def _status(table) -> dict[str, str]:
    return dict(zip(table["item"], table["status"], strict=True))


def test_a_grid_reads_its_training_stages_and_evaluation_languages():
    needs, models = grid_needs(_config())
    assert {(n.task, n.split, n.language) for n in needs} == {
        ("mnli", "train", "en"), ("xnli", "validation", "en"), ("xnli", "test", "de")}
    assert models == ["xlm-roberta-base"]


def test_everything_present_on_the_stand_in_checks_ok(hub):
    table = check_grid(_config(), FolderListing(hub))
    assert set(table["status"]) == {"ok"} and exit_status(table) == 0
    assert "hub facebook/xnli config de @ main" in set(table["source"])


def test_a_loading_script_a_missing_config_split_file_and_tokenizer_are_problems(hub):
    (hub / "datasets" / "nyu-mll" / "glue" / "glue.py").write_text("")
    (hub / "datasets" / "facebook" / "xnli" / "de" / "test-00000-of-00001.parquet").unlink()
    (hub / "models" / "FacebookAI" / "xlm-roberta-base" / "sentencepiece.bpe.model").unlink()
    table = check_grid(_config(), FolderListing(hub))
    details = dict(zip(table["item"], table["detail"], strict=True))
    assert "glue.py, a loading script that datasets 5.x refuses" in details["mnli train en"]
    assert "data_revisions={'mnli'" in details["mnli train en"]
    assert "split(s) ['test'] of config 'de' match no file" in details["xnli test de"]
    assert "missing a tokenizer" in details["model xlm-roberta-base"]
    assert _status(table)["xnli validation en"] == "ok" and exit_status(table) == 1
    card = _card({"en": {"validation": "en/validation-*", "test": "en/test-*"}})
    (hub / "datasets" / "facebook" / "xnli" / "README.md").write_text(card)
    details = dict(zip(*(check_grid(_config(), FolderListing(hub))[c]
                         for c in ("item", "detail")), strict=True))
    assert "no config 'de' in the card" in details["xnli test de"]


ANLI_FILES = {f"plain_text/{split}-00000-of-00001.parquet": "" for split in (
    "train_r1", "train_r2", "train_r3", "dev_r1", "dev_r2", "dev_r3", "test_r1", "test_r2",
    "test_r3")}
ANLI_SPLITS = {name.split("/")[1].split("-")[0]: name.replace("00000-of-00001", "*")
               for name in ANLI_FILES}


@pytest.mark.parametrize(("configs", "default", "status"), [
    ({"plain_text": ANLI_SPLITS}, None, "ok"),  # the only config
    ({"plain_text": ANLI_SPLITS, "other": {"train": "other/*"}}, "plain_text", "ok"),
    ({"plain_text": ANLI_SPLITS, "other": {"train": "other/*"}}, None, "problem"),
])
def test_a_task_without_a_config_is_checked_against_the_cards_default(hub, configs, default,
                                                                        status):
    """ANLI names no config: load_dataset takes the card's default (or only) config."""
    from stilts_core.grid.preflight import check_hub_dataset
    from stilts_core.tasks.registry import get_task

    _repo(hub, "datasets", "facebook/anli", {"README.md": _card(configs, default), **ANLI_FILES})
    found, detail = check_hub_dataset(get_task("anli"), "train", "en", "main", FolderListing(hub))
    assert found == status, detail
    assert ("config 'plain_text'" if status == "ok" else "no config 'default'") in detail


def test_offline_local_inputs_are_read_and_hub_inputs_are_plainly_not_checked(fixtures_root):
    config = _config(data_root=str(fixtures_root), languages={"xnli": ["de", "ar"]})
    table = check_grid(config, None)
    status = _status(table)
    assert status["xnli test de"] == status["mnli train en"] == "ok"
    assert status["xnli test ar"] == "problem"  # named in the config, so required
    assert status["model xlm-roberta-base"] == "not checked"
    assert set(table.loc[table["status"] == "not checked", "detail"]) == {"hub unreachable"}
    assert exit_status(table) == 1
    optional = check_grid(_config(data_root=str(fixtures_root), languages={}), None)
    assert _status(optional)["xnli test ar"] == "skipped" and exit_status(optional) == 3


def test_a_local_file_is_held_to_the_declared_size(tmp_path, fixtures_root):
    (tmp_path / "mnli").mkdir()
    (tmp_path / "mnli" / "train-en.jsonl").write_text(
        (fixtures_root / "mnli" / "train-en.jsonl").read_text())
    config = _config(hyperparameters={"data_roots": {"mnli": str(tmp_path)}})
    table = check_grid(config, None)
    detail = table.set_index("item").loc["mnli train en", "detail"]
    assert "3000 examples, the registry declares 392702" in detail


def test_the_full_scale_grid_is_checked_offline_with_what_was_not_checked_said(capsys):
    from stilts_core.paths import configs_dir

    assert main(["grid", "check", str(configs_dir() / "xstilts.yaml")]) == 1
    out = capsys.readouterr().out
    assert "not checked" in out  # offline: every hub input; anywhere: the LASER release files
    assert "ccg train en" in out and "local only" in out  # CCGbank needs data_roots
    assert "tatoeba test az" in out and "LASER" in out


def test_grid_needs_follow_the_runs_mixture_and_combined_sets(tmp_path):
    from stilts_core.grid.plan import load_config
    from stilts_core.grid.preflight import grid_needs
    from stilts_core.paths import configs_dir

    config = yaml.safe_load((configs_dir() / "e5_study_v2.yaml").read_text())
    config["intermediate_tasks"].append("anli_plus")  # ANLI+ combines ANLI, SNLI and MNLI
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    needs, _ = grid_needs(load_config(path))
    read = {(n.task, n.split) for n in needs}
    # multi trains the grid's MNLI and SST-2, not the declared nine; SNLI only adds training data
    assert not {t for t, _ in read} & {"ccg", "hellaswag", "qqp", "squad", "commonsense_qa"}
    assert ("sst2", "train") in read
    assert ("snli", "train") in read and ("snli", "validation") not in read
