"""Hub sources that load under datasets 5.x, and the languages the hub copies lack."""

import shutil

import pytest

from stilts_core.data.loading import load_split
from stilts_core.data.sources import DataSourceError, fetch_release_files
from stilts_core.tasks.registry import TASKS, get_task

# Repos whose main holds only a loading script, which datasets 5.x refuses.
SCRIPT_ONLY = {"allenai/social_i_qa", "facebook/mlqa", "allenai/cosmos_qa"}
LASER_ONLY = ("az", "lt", "pl", "uk", "ro")


def test_no_task_reads_a_script_only_repo_and_mlqa_reads_xtreme_configs():
    used = {task.hub.path for task in TASKS.values() if task.hub is not None}
    assert not used & SCRIPT_ONLY
    mlqa = get_task("mlqa")
    assert (mlqa.hub.path, mlqa.hub_config("de")) == ("google/xtreme", "MLQA.de.de")
    assert get_task("siqa").hub.path == "lighteval/siqa"


def test_tatoeba_declares_the_36_hub_languages_and_the_release_for_the_other_five():
    task = get_task("tatoeba")
    assert len(task.hub.languages) == 36 and not set(LASER_ONLY) & set(task.hub.languages)
    assert set(task.hub.languages) | set(task.release.languages) == set(task.languages)
    assert task.release.names("test", task.language_codes["az"]) == (
        "tatoeba.aze-eng.aze", "tatoeba.aze-eng.eng")


def test_a_failed_hub_load_names_task_id_uncertainty_and_overrides(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DataSourceError) as raised:
        load_split(get_task("cosmos_qa"), "validation", "en", "hub")
    message = str(raised.value)
    for part in ("task 'cosmos_qa'", "'Samsoup/cosmos_qa'", "not sure", "third-party copy",
                 "data_revisions={'cosmos_qa': <commit>}", "data_roots={'cosmos_qa': <root>}"):
        assert part in message


def _laser_stand_in(shared_data, tmp_path, languages):
    """A folder laid out like LASER's repository at the pinned commit (data/tatoeba/v1)."""
    commit = get_task("tatoeba").release.revision
    folder = tmp_path / "LASER" / commit / "data" / "tatoeba" / "v1"
    folder.mkdir(parents=True)
    for code in languages:
        for side in (code, "eng"):
            name = f"tatoeba.{code}-eng.{side}"
            shutil.copy(shared_data / "tatoeba" / name, folder / name)
    return tmp_path / "LASER"


def test_tatoeba_languages_missing_on_the_hub_come_from_the_laser_release(shared_data, tmp_path,
                                                                         monkeypatch):
    task = get_task("tatoeba")
    stand_in = _laser_stand_in(shared_data, tmp_path, ["aze"])
    url = stand_in.as_uri() + "/{revision}/data/tatoeba/v1/{name}"
    task = task.model_copy(update={"release": task.release.model_copy(update={"url": url})})
    cache = tmp_path / "cache"
    monkeypatch.setenv("STILTS_CACHE_DIR", str(cache))
    pairs = load_split(task, "test", "az", "hub")
    assert len(pairs) == 1000 and set(pairs.column_names) == {"text", "text_pair"}
    own = (shared_data / "tatoeba" / "tatoeba.aze-eng.aze").read_text().splitlines()
    assert pairs[0]["text"] == own[0]
    assert (cache / "release" / "tatoeba" / task.release.revision / "tatoeba.aze-eng.eng").is_file()
    with pytest.raises(DataSourceError, match=r"language 'lt'.*could not download .*"
                                              r"tatoeba\.lit-eng\.lit.*data_roots=\{'tatoeba'"):
        fetch_release_files(task, "test", "lt", tmp_path / "elsewhere")
    assert not list((tmp_path / "elsewhere").glob(".*part*"))


def test_a_local_root_with_the_laser_files_serves_every_missing_language(shared_data):
    for language in LASER_ONLY:
        pairs = load_split(get_task("tatoeba"), "test", language, shared_data)
        assert len(pairs) == 1000


def test_release_files_of_unequal_length_are_refused(tmp_path):
    folder = tmp_path / "tatoeba"
    folder.mkdir()
    (folder / "tatoeba.pol-eng.pol").write_text("a\nb\n")
    (folder / "tatoeba.pol-eng.eng").write_text("a\n")
    with pytest.raises(DataSourceError, match=r"line-aligned.*tatoeba\.pol-eng\.pol: 2"):
        load_split(get_task("tatoeba"), "test", "pl", tmp_path)


def test_the_cosmos_qa_release_dev_set_loads_with_the_declared_fields_and_size(shared_data,
                                                                            tmp_path):
    task = get_task("cosmos_qa")
    (tmp_path / "cosmos_qa").mkdir()
    (tmp_path / "cosmos_qa" / "validation-en.csv").symlink_to(
        shared_data / "intermediate" / "cosmosqa" / "valid.csv")
    dev = load_split(task, "validation", "en", tmp_path)
    assert len(dev) == task.sizes.validation
    assert {len(choices) for choices in dev["choices"]} == {4}


def test_a_run_on_a_local_root_says_which_languages_it_skips_and_why(fixtures_root, tmp_path,
                                                                     caplog):
    import json

    from stilts_core.phases.common import available_languages
    from stilts_core.phases.params import PARAMS

    caplog.set_level("INFO", logger="stilts_core")
    params = PARAMS["zero_shot_eval"](data_root=str(fixtures_root))
    found = available_languages(get_task("xnli"), "test", params, tmp_path)
    record = json.loads((tmp_path / "skipped_languages.json").read_text())
    assert set(found) == {"en", "de", "fr", "es"}
    assert set(record["skipped"]) == set(get_task("xnli").languages) - set(found)
    assert record["skipped"]["ar"] == "no test file under fixtures:xnli"
    assert record["root"] == "fixtures:."
    assert "xnli: skipping 11 of 15 languages" in caplog.text
