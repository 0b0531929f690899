"""Chapter "Power and sensitivity" (``07_power``):
the power curve and the leave-one-out influence of each factor.
"""

from __future__ import annotations

import pandas as pd


def power_figure(curve: pd.DataFrame, target: float = 0.8):
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5, 3.4))
    axis.errorbar(curve["slope"], curve["power"],
                  yerr=[curve["power"] - curve["power_low"], curve["power_high"] - curve["power"]],
                  fmt="o-", capsize=3)
    axis.axhline(target, color="grey", linestyle="--", linewidth=0.8)
    axis.set(xlabel="true slope (gain points per SD of the index)", ylabel="power",
             ylim=(0, 1.02))
    figure.tight_layout()
    return figure


def leave_one_out_figure(table: pd.DataFrame, factor: str = "language"):
    """Each leave-one-out estimate with a 95% Wald interval; the line is the full fit."""
    import matplotlib.pyplot as plt

    ordered = table.sort_values("estimate")
    figure, axis = plt.subplots(figsize=(6.5, max(3.0, 0.2 * len(ordered) + 1)))
    axis.errorbar(ordered["estimate"], range(len(ordered)), xerr=1.96 * ordered["se"], fmt="o",
                  markersize=3, color="#444", ecolor="#bbb")
    axis.axvline(table.attrs["full_estimate"], color="#1f6feb", label="all languages")
    axis.axvline(0, color="black", linewidth=0.6)
    axis.set_yticks(range(len(ordered)), [f"without {level}" for level in ordered[factor]],
                    fontsize=7)
    axis.set_xlabel("slope of the index (gain points per SD)")
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    return figure
