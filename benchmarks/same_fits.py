"""Do two versions of the fitting code give the same fits? Prints, as JSON, the likelihood-ratio
test and the REML average slope of the type-I benchmark's null sets (``type_one_error.py``: 6 per
setting, 30 in all) with whichever ``stilts_core`` is first on the path, and the seconds they
took. Run it under each version and compare the two outputs with ``--compare``:

    PYTHONPATH=OLD_CHECKOUT python benchmarks/same_fits.py > old.json
    PYTHONPATH=NEW_CHECKOUT python benchmarks/same_fits.py > new.json
    python benchmarks/same_fits.py --compare old.json new.json

Where every p value agrees, the type-I error measured with the old code holds for the new.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import type_one_error  # noqa: E402

from stilts_core.analysis import statistics as st  # noqa: E402

SETS_PER_SETTING = 6


def fits() -> dict:
    design, covariates = type_one_error.null_design()
    rows = []
    start = time.perf_counter()
    for number, (name, variances) in enumerate(type_one_error.SETTINGS.items()):
        for state in np.random.SeedSequence(2024 + number).generate_state(SETS_PER_SETTING):
            frame = st.simulate_gains(design, covariates, 0.0, variances,
                                      np.random.default_rng(state))
            test = st.likelihood_ratio_test(frame)
            slope = st.fit(frame)[1].slopes.loc[st.AVERAGE_SLOPE]
            rows.append({"setting": name, "p": test["p_value"], "statistic": test["statistic"],
                         "slope": float(slope["estimate"]), "se": float(slope["std_error"])})
    return {"seconds": time.perf_counter() - start, "rows": rows}


def compare(old: dict, new: dict) -> dict:
    pairs = list(zip(old["rows"], new["rows"], strict=True))
    return {"sets": len(pairs),
            "max_abs_p_difference": max(abs(a["p"] - b["p"]) for a, b in pairs),
            "max_abs_statistic_difference": max(abs(a["statistic"] - b["statistic"])
                                                for a, b in pairs),
            "max_abs_slope_difference": max(abs(a["slope"] - b["slope"]) for a, b in pairs),
            "max_relative_se_difference": max(abs(a["se"] - b["se"]) / a["se"] for a, b in pairs),
            "same_rejections_at_0.05": all((a["p"] < 0.05) == (b["p"] < 0.05) for a, b in pairs),
            "seconds_old": old["seconds"], "seconds_new": new["seconds"],
            "speed_ratio_old_over_new": old["seconds"] / new["seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("OLD", "NEW"))
    args = parser.parse_args()
    if args.compare:
        old, new = (json.loads(path.read_text()) for path in args.compare)
        print(json.dumps(compare(old, new), indent=1))
    else:
        print(json.dumps(fits()))


if __name__ == "__main__":
    main()
