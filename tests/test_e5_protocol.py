"""The base encoder's Tatoeba numbers under e5's declared protocol agree with a computation that
shares nothing with the project but the model files: the release files read line by line, the
tokenizer and model through plain ``transformers``, the mean of the last hidden state over the
attention mask, cosine nearest neighbours both ways."""

from __future__ import annotations

import numpy as np
import pytest

from stilts_core.runs.results import read_run_results

# Swahili, Telugu and Javanese: far from the ceiling, and with few pairs (390, 234, 205)
LANGUAGES = {"sw": "swh", "te": "tel", "jv": "jav"}
MAX_LENGTH = 64


def _independent_accuracies(model_path, pack, code: str) -> tuple[float, float, int]:
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModel.from_pretrained(model_path).eval()

    def vectors(path):
        lines = path.read_text(encoding="utf-8").split("\n")
        lines = lines[:-1] if lines[-1] == "" else lines
        pooled = []
        with torch.inference_mode():
            for start in range(0, len(lines), 32):
                batch = tokenizer(lines[start:start + 32], padding=True, truncation=True,
                                  max_length=MAX_LENGTH, return_tensors="pt")
                hidden = model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).float()
                pooled.append((hidden * mask).sum(1) / mask.sum(1))
        matrix = torch.cat(pooled).numpy()
        return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)

    source = vectors(pack / "tatoeba" / f"tatoeba.{code}-eng.{code}")
    english = vectors(pack / "tatoeba" / f"tatoeba.{code}-eng.eng")
    similarity = source @ english.T
    gold = np.arange(len(source))
    return (100 * float(np.mean(similarity.argmax(1) == gold)),
            100 * float(np.mean(similarity.argmax(0) == gold)), len(gold))


@pytest.mark.slow
def test_the_base_encoders_retrieval_agrees_with_an_independent_computation(
        e5_model_path, shared_data, tmp_path):
    from stilts_core.phases.alignment import alignment

    alignment({"model": "multilingual-e5-small", "data_root": "pack", "task": "tatoeba",
               "languages": list(LANGUAGES), "retrieval_layer": 12, "max_length": MAX_LENGTH,
               "layers": [12]}, run_dir=str(tmp_path / "run"))
    rows = read_run_results(tmp_path / "run")
    for language, code in LANGUAGES.items():
        ours = rows[rows["language"] == language].set_index("metric")["value"]
        xx_to_en, en_to_xx, pairs = _independent_accuracies(e5_model_path, shared_data, code)
        one_pair = 100 / pairs + 1e-9  # float differences of padding may flip one near tie
        assert abs(ours["accuracy"] - xx_to_en) <= one_pair, (language, ours["accuracy"], xx_to_en)
        assert abs(ours["accuracy_en_to_xx"] - en_to_xx) <= one_pair, language
        assert ours["alignment_retrieval_accuracy"] == ours["accuracy"]
