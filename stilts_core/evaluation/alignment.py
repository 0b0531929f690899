"""Layer-wise cross-lingual alignment of sentence representations, against English.

Each measure takes two representation matrices of the same parallel sentences (row i of
``source`` translates row i of ``english``), L2-normalised rows as :mod:`stilts_core.evaluation.retrieval`
makes them, and returns one number. The registry :data:`MEASURES` is what the alignment phase
loops over, per layer and per language.

* ``retrieval_accuracy``: percentage of source sentences whose nearest English sentence by
  cosine is their translation, the Tatoeba protocol (Artetxe & Schwenk 2019; Hu et al. 2020).
* ``cosine_gap``: mean cosine of translation pairs minus mean cosine of all non-translation
  pairs ``i != j``. Positive when translations are closer than unrelated sentences; it is the
  quantity the margin criterion of Artetxe & Schwenk (2019) thresholds locally, here averaged
  over the whole set so that it does not depend on a neighbourhood size.
* ``linear_cka``: linear centred kernel alignment, ``||Yc' Xc||_F^2 / (||Xc' Xc||_F
  ||Yc' Yc||_F)`` with column-centred ``Xc``, ``Yc`` (Kornblith et al. 2019, eq. for linear
  CKA); used across languages and layers by Conneau et al. (2020, "Emerging cross-lingual
  structure in pretrained language models"). 1 for identical matrices, invariant to orthogonal
  transformations and isotropic scaling.
* ``centred_retrieval_accuracy``: retrieval accuracy after subtracting each language's mean
  vector and re-normalising: what the language-neutral component alone retrieves (Libovický,
  Rosa & Fraser 2020, "On the language neutrality of pre-trained multilingual
  representations"). The means are those of the evaluated sentences themselves.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from stilts_core.evaluation.retrieval import nearest_neighbours, normalise


def retrieval_accuracy(source: np.ndarray, english: np.ndarray) -> float:
    found = nearest_neighbours(source, english)
    return 100.0 * float(np.mean(found == np.arange(len(source))))


def cosine_gap(source: np.ndarray, english: np.ndarray) -> float:
    """Without the n x n matrix: the sum of all cosines is ``sum(source) . sum(english)``."""
    n = len(source)
    if n < 2:
        raise ValueError("cosine_gap needs at least two pairs")
    source, english = source.astype(np.float64), english.astype(np.float64)
    matched = float(np.einsum("ij,ij->", source, english))
    everything = float(source.sum(axis=0) @ english.sum(axis=0))
    return matched / n - (everything - matched) / (n * (n - 1))


def linear_cka(source: np.ndarray, english: np.ndarray) -> float:
    x = source.astype(np.float64) - source.mean(axis=0)
    y = english.astype(np.float64) - english.mean(axis=0)
    cross = np.linalg.norm(y.T @ x) ** 2
    denominator = np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)
    if denominator == 0:
        raise ValueError("linear_cka is undefined for a constant representation matrix")
    return float(cross / denominator)


def centred_retrieval_accuracy(source: np.ndarray, english: np.ndarray) -> float:
    return retrieval_accuracy(normalise(source - source.mean(axis=0)),
                              normalise(english - english.mean(axis=0)))


MEASURES: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "retrieval_accuracy": retrieval_accuracy,
    "cosine_gap": cosine_gap,
    "linear_cka": linear_cka,
    "centred_retrieval_accuracy": centred_retrieval_accuracy,
}
METRIC_PREFIX = "alignment_"  # results-table metric names: alignment_<measure>


def alignment_scores(source: np.ndarray, english: np.ndarray) -> dict[str, float]:
    """Every measure for one layer and one language."""
    if source.shape != english.shape:
        raise ValueError(f"parallel matrices differ in shape: {source.shape} vs {english.shape}")
    return {name: measure(source, english) for name, measure in MEASURES.items()}
