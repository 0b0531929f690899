import pytest

from stilts_core.models.registry import get_model_spec, load_tokenizer, provenance_ceiling, resolve_model


def test_tiny_tokenizer_has_xlmr_special_tokens(tiny_model_path):
    tokenizer = load_tokenizer(tiny_model_path)
    assert (tokenizer.cls_token_id, tokenizer.pad_token_id, tokenizer.sep_token_id) == (0, 1, 2)
    ids = tokenizer("Anna hat 5 Bücher.")["input_ids"]
    assert ids[0] == 0 and ids[-1] == 2
    assert tokenizer.unk_token_id not in ids


def test_tiny_model_is_built_once_and_reused(tiny_model_path):
    assert resolve_model("tiny-xlmr") == tiny_model_path


def test_tiny_model_weights_are_deterministic(tiny_model_path, tmp_path, monkeypatch):
    import torch
    from safetensors.torch import load_file

    monkeypatch.setenv("STILTS_CACHE_DIR", str(tmp_path))
    rebuilt = resolve_model("tiny-xlmr")
    assert rebuilt != tiny_model_path
    a = load_file(f"{tiny_model_path}/model.safetensors")
    b = load_file(f"{rebuilt}/model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert load_tokenizer(rebuilt).get_vocab() == load_tokenizer(tiny_model_path).get_vocab()


def test_local_overrides_win_over_the_hub(tmp_path, monkeypatch):
    (tmp_path / "xlm-roberta-large").mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the hub id is returned for the HF cache to serve
    assert resolve_model("xlm-roberta-large") == "FacebookAI/xlm-roberta-large"
    monkeypatch.setenv("STILTS_MODEL_ROOT", str(tmp_path))
    assert resolve_model("xlm-roberta-large") == str((tmp_path / "xlm-roberta-large").resolve())
    assert resolve_model(str(tmp_path)) == str(tmp_path.resolve())


def test_unreachable_hub_names_the_model_and_the_override(monkeypatch):
    from huggingface_hub import constants

    from stilts_core.models.registry import ModelSourceError

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("STILTS_MODEL_ROOT", raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(ModelSourceError, match=r"'xlm-roberta-base'.*STILTS_MODEL_ROOT/xlm-roberta-base"):
        resolve_model("xlm-roberta-base")


def test_provenance_ceilings_and_unknown_models():
    assert provenance_ceiling("xlm-roberta-large") == "full-scale run"
    assert provenance_ceiling("tiny-xlmr") == "smoke run"
    assert provenance_ceiling("/some/local/checkpoint") == "partial run"
    with pytest.raises(KeyError, match="registered: .*tiny-xlmr"):
        get_model_spec("gpt-17")
