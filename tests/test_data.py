import json

import pytest

from stilts_core.data.loading import load_split
from stilts_core.data.sources import DataSourceError
from stilts_core.tasks.registry import get_task


def test_fixture_split_loads_in_hub_schema(fixtures_root):
    dataset = load_split(get_task("xnli"), "test", "de", fixtures_root)
    assert set(dataset.column_names) == {"text", "text_pair", "label"}
    assert set(dataset["label"]) == {0, 1, 2}


def test_missing_local_file_names_path_and_fix(tmp_path):
    with pytest.raises(DataSourceError, match=r"test-de\.jsonl.*STILTS_DATA_ROOT"):
        load_split(get_task("xnli"), "test", "de", tmp_path)


def test_undeclared_language_is_refused(fixtures_root):
    with pytest.raises(DataSourceError, match="no language 'xx'"):
        load_split(get_task("xnli"), "test", "xx", fixtures_root)


def _write(root, task, name, rows):
    path = root / task / name
    path.parent.mkdir(parents=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_missing_field_names_file_and_field(tmp_path):
    _write(tmp_path, "xnli", "test-de.jsonl", [{"premise": "a", "label": 0}])
    with pytest.raises(DataSourceError, match=r"test-de\.jsonl: missing field\(s\) \['hypothesis'\]"):
        load_split(get_task("xnli"), "test", "de", tmp_path)


def test_label_names_are_mapped_and_bad_labels_named_by_example(tmp_path):
    rows = [{"premise": "a", "hypothesis": "b", "label": "neutral"},
            {"premise": "a", "hypothesis": "b", "label": "maybe"}]
    _write(tmp_path, "xnli", "test-de.jsonl", rows)
    with pytest.raises(DataSourceError, match=r"example 2: field 'label' has 'maybe'"):
        load_split(get_task("xnli"), "test", "de", tmp_path)
    (tmp_path / "xnli" / "test-de.jsonl").write_text(json.dumps(rows[0]) + "\n")
    assert load_split(get_task("xnli"), "test", "de", tmp_path)["label"] == [1]


def test_offline_hub_load_fails_fast_with_the_override_to_use(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DataSourceError, match=r"'facebook/xnli'.*data_root=<root>"):
        load_split(get_task("xnli"), "test", "de", "hub")


def test_unreachable_hub_fails_in_seconds_not_minutes(monkeypatch):
    import time

    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    started = time.monotonic()
    with pytest.raises(DataSourceError, match=r"hub is unreachable.*'facebook/xnli'.*data_root"):
        load_split(get_task("xnli"), "test", "de", "hub")
    assert time.monotonic() - started < 10


def test_pairs_are_tokenised_with_both_segments(fixtures_root, tiny_model_path):
    from stilts_core.formats import Encoding
    from stilts_core.formats.classification import encode as encode_classification
    from stilts_core.models.registry import load_tokenizer

    tokenizer = load_tokenizer(tiny_model_path)
    task = get_task("xnli")
    features = encode_classification(load_split(task, "test", "fr", fixtures_root), tokenizer,
                                     Encoding(max_length=64))
    first = features[0]
    assert first["length"] == len(first["input_ids"])
    assert first["input_ids"].count(tokenizer.sep_token_id) == 3  # <s> A </s></s> B </s>
    assert first["input_ids"][0] == tokenizer.cls_token_id
