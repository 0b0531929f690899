"""Every bad results table is refused on read, by the commands that read one, with the file, the
column, the first offending rows and the fix; nothing is dropped silently."""

import numpy as np
import pandas as pd
import pytest

from stilts_core.cli import main
from stilts_core.paths import data_dir
from stilts_core.runs.results import (
    COLUMNS,
    VALUE_RANGES,
    ResultsError,
    collect,
    read_results,
    write_run_results,
)

STUDY = data_dir() / "real_results" / "e5_study_v2.parquet"


@pytest.fixture(scope="module")
def study() -> pd.DataFrame:
    """A part of the committed study (three seeds, XNLI and Tatoeba, five languages), which the
    statistics accept as it is."""
    table = pd.read_parquet(STUDY)
    keep = (table["target_task"].isin(["xnli", "tatoeba"])
            & table["language"].isin(["en", "de", "ru", "sw", "tr", "zh"]))
    return table[keep].reset_index(drop=True)


def _xnli_test_row(table: pd.DataFrame) -> int:
    return int(table.index[(table["target_task"] == "xnli") & (table["split"] == "test")][0])


def _broken(table: pd.DataFrame, trial: str) -> pd.DataFrame:
    """One of the bad tables a user can make by hand from a good one."""
    row = _xnli_test_row(table)
    edits = {
        "nan": lambda t: t.assign(value=t["value"].where(t.index != row, np.nan)),
        "inf": lambda t: t.assign(value=t["value"].where(t.index != row, np.inf)),
        "out of range": lambda t: t.assign(value=t["value"].where(t.index != row, 1e6)),
        "exact duplicate": lambda t: pd.concat([t, t.loc[[row]]], ignore_index=True),
        "conflicting duplicate": lambda t: pd.concat([t, t.loc[[row]].assign(value=12.5)],
                                                     ignore_index=True),
        "string values": lambda t: t.assign(
            value=t["value"].astype(str).where(t.index != row, "n/a")),
        "missing column": lambda t: t.drop(columns="seed"),
    }
    return edits[trial](table)


# What the one line the command line ends in says, per trial.
EXPECTED = {
    "nan": r"column 'value': 1 row\(s\) not finite",
    "inf": r"column 'value': 1 row\(s\) not finite",
    "out of range": r"column 'value': 1 row\(s\) outside their metric's range",
    "exact duplicate": r"key columns \(model, .*\): 2 row\(s\) that are exact copies",
    "conflicting duplicate": r"key columns \(model, .*\): 2 row\(s\) that give one cell "
                             r"different values; keep the run you mean",
    "string values": r"column 'value': \d+ row\(s\) of the wrong kind .* not text",
    "missing column": r"missing column\(s\) \['seed'\]",
}


@pytest.mark.parametrize("trial", sorted(EXPECTED))
def test_read_refuses_a_bad_table_naming_file_column_rows_and_fix(tmp_path, study, trial):
    path = tmp_path / "results.parquet"
    _broken(study, trial).to_parquet(path)
    with pytest.raises(ResultsError, match=EXPECTED[trial]) as raised:
        read_results(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: ")
    if trial != "missing column":
        assert "first offending rows" in message and "run_id" in message  # rows name their run


@pytest.mark.parametrize("command", ["stats export", "book --results"])
@pytest.mark.parametrize("trial", sorted(EXPECTED))
def test_commands_that_read_tables_exit_2_on_a_bad_table(tmp_path, study, capsys, trial,
                                                         command):
    path = tmp_path / "results.parquet"
    _broken(study, trial).to_parquet(path)
    argv = {"stats export": ["stats", "export", "--results", str(path), "--index",
                             "mattr_over_english", "--missing", "exclude", "--output",
                             str(tmp_path / "stats")],
            "book --results": ["book", "--results", str(path), "--no-html"]}[command]
    assert main(argv) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"stilts: error: {path}: ")
    assert pd.Series([last]).str.contains(EXPECTED[trial]).all(), last
    assert not (tmp_path / "stats").exists()


def test_the_good_table_is_analysed_with_every_row(tmp_path, study, capsys):
    """The control: the same part of the study, unbroken, goes through."""
    path = tmp_path / "results.parquet"
    study.to_parquet(path)
    assert len(read_results(path)) == len(study)
    assert main(["stats", "export", "--results", str(path), "--index", "mattr_over_english",
                 "--missing", "exclude", "--output", str(tmp_path / "stats")]) == 0


def test_a_table_of_one_language_is_refused_by_the_analysis_with_the_reason(tmp_path, study,
                                                                            capsys):
    path = tmp_path / "results.parquet"
    study[study["language"].isin(["en", "de"])].to_parquet(path)
    assert main(["stats", "export", "--results", str(path), "--index", "mattr_over_english",
                 "--output", str(tmp_path / "stats")]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "cover 1 non-English language(s) (de)" in last and "at least 3 languages" in last


def test_collect_refuses_a_run_file_with_a_nan_naming_the_file(tmp_path, study):
    run = tmp_path / "run"
    rows = study[study["target_task"] == "xnli"].head(3).to_dict("records")
    write_run_results(run, rows)
    csv = next((run / "results").rglob("*.csv"))
    lines = csv.read_text().splitlines()
    header = lines[0].split(",")
    first = lines[1].split(",")
    first[header.index("value")] = ""  # a score the run never wrote
    csv.write_text("\n".join([lines[0], ",".join(first), *lines[2:]]) + "\n")
    with pytest.raises(ResultsError, match=rf"{csv}: column 'value': 1 row\(s\) not finite"):
        collect([run], tmp_path / "out.parquet")
    assert not (tmp_path / "out.parquet").exists()


def test_every_score_the_study_and_the_pipeline_write_has_a_declared_range():
    from stilts_core.evaluation.alignment import MEASURES, METRIC_PREFIX

    written = set(pd.read_parquet(STUDY, columns=["metric"])["metric"])
    written |= {METRIC_PREFIX + name for name in MEASURES}
    assert written <= set(VALUE_RANGES)
    assert set(pd.read_parquet(STUDY).columns) == set(COLUMNS)
