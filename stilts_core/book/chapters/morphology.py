"""Chapter "Morphological complexity" (``00_morphology``):
the indices, their sources, and how well the measures agree.
"""

from __future__ import annotations

import pandas as pd

from stilts_core.analysis.morphology import WALS_FEATURES, wide_view


def morphology_sources(indices: pd.DataFrame) -> pd.DataFrame:
    """Per family of measures: the sources, their versions, and how many languages and
    measures have values (each row of ``indices.csv`` names its own file version)."""
    rows = indices[indices["primary"] & indices["value"].notna()]

    def versions(values: pd.Series) -> str:
        unique = sorted(set(values))
        return unique[0] if len(unique) == 1 else f"{len(unique)} file versions (per row)"

    return (rows.groupby("family")
            .agg(sources=("source", lambda s: s.str.replace(r" \(.*\)$", "", regex=True).nunique()),
                 source_versions=("source_version", versions),
                 languages=("language", "nunique"), measures=("measure", "nunique"))
            .reset_index())


def _zscores(wide: pd.DataFrame) -> pd.DataFrame:
    return (wide - wide.mean()) / wide.std()


def morphology_heatmap(indices: pd.DataFrame, measures: list[str] | None = None):
    """Languages x measures, each measure standardised over the languages it covers (blank:
    no value); languages ordered by their mean standardised value."""
    import matplotlib.pyplot as plt
    import seaborn as sns


    wide = wide_view(indices)
    wide = wide[measures] if measures else wide.dropna(axis=1, thresh=10)
    z = _zscores(wide)
    z = z.loc[z.mean(axis=1).sort_values(ascending=False).index]
    figure, axis = plt.subplots(figsize=(0.42 * z.shape[1] + 3, 0.22 * z.shape[0] + 2))
    sns.heatmap(z, cmap="vlag", center=0, ax=axis, cbar_kws={"label": "z-score over languages"},
                xticklabels=True, yticklabels=True)
    axis.set_xlabel("")
    axis.set_ylabel("language")
    figure.tight_layout()
    return figure


def morphology_bars(indices: pd.DataFrame, measures: list[str]):
    """The raw value of each named measure per language, one panel per measure, sorted."""
    import matplotlib.pyplot as plt


    wide = wide_view(indices)
    figure, axes = plt.subplots(1, len(measures), figsize=(3.2 * len(measures), 9.5))
    for axis, measure in zip(axes, measures, strict=True):
        values = wide[measure].dropna().sort_values()
        axis.barh(values.index, values.to_numpy(), color="#4c72b0")
        axis.set_title(measure, fontsize=9)
        axis.tick_params(axis="y", labelsize=7)
    figure.tight_layout()
    return figure


def measure_correlations(indices: pd.DataFrame, min_languages: int = 8,
                         method: str = "spearman") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pairwise rank correlations between measures over the languages both cover, and the
    number of those languages; a pair sharing fewer than ``min_languages`` is left empty."""
    wide = wide_view(indices).dropna(axis=1, thresh=min_languages)
    present = wide.notna().astype(int)
    counts = present.T @ present
    correlations = wide.corr(method=method, min_periods=min_languages)
    return correlations, counts


def correlation_heatmap(correlations: pd.DataFrame):
    import matplotlib.pyplot as plt
    import seaborn as sns

    size = 0.38 * len(correlations) + 2
    figure, axis = plt.subplots(figsize=(size + 1, size))
    sns.heatmap(correlations, cmap="vlag", vmin=-1, vmax=1, ax=axis, square=True,
                xticklabels=True, yticklabels=True,
                cbar_kws={"label": "Spearman correlation over languages"})
    figure.tight_layout()
    return figure


def measure_disagreements(indices: pd.DataFrame, first: str, second: str,
                          top: int = 5) -> pd.DataFrame:
    """Languages whose rank on two measures differs most (ranks as percentiles over the
    languages both measures cover)."""
    both = wide_view(indices)[[first, second]].dropna()
    ranks = both.rank(pct=True)
    ranks["rank_difference"] = ranks[first] - ranks[second]
    order = ranks["rank_difference"].abs().sort_values(ascending=False).index[:top]
    return both.join(ranks.add_suffix("_percentile"))[
        [first, second, f"{first}_percentile", f"{second}_percentile",
         "rank_difference_percentile"]].loc[order].rename(
        columns={"rank_difference_percentile": "percentile_difference"}).round(3)


def weakest_agreements(correlations: pd.DataFrame, counts: pd.DataFrame,
                       top: int = 8) -> pd.DataFrame:
    """The measure pairs (from different families where possible) that agree least."""
    pairs = [(a, b, correlations.loc[a, b], counts.loc[a, b])
             for i, a in enumerate(correlations.index) for b in correlations.columns[i + 1:]
             if pd.notna(correlations.loc[a, b])]
    table = pd.DataFrame(pairs, columns=["measure", "other_measure", "spearman", "languages"])
    return table.sort_values("spearman").head(top).round(3).reset_index(drop=True)


def wals_coding_table() -> pd.DataFrame:
    """The numeric coding of each WALS feature (``stilts_core.analysis.morphology.WALS_FEATURES``)."""
    return pd.DataFrame([{"feature": f.id, "name": f.name, "coding": f.reading,
                          "WALS value -> score": "; ".join(f"{k}: {'off the scale' if v is None else v}"
                                                           for k, v in f.coding.items()),
                          "in wals_synthesis": f.in_composite}
                         for f in WALS_FEATURES.values()]).set_index("feature")
