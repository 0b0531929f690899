"""The one way outputs are written: whole or not at all."""

from __future__ import annotations

import pytest

from stilts_core.paths import atomic_output, atomic_write_text


def test_a_file_appears_whole_and_its_staging_copy_is_gone(tmp_path):
    path = tmp_path / "deep" / "table.csv"
    with atomic_output(path) as staging:
        staging.write_text("a,b\n1,2\n")
        assert not path.exists()  # nothing at the final name until the block ends
    assert path.read_text() == "a,b\n1,2\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["table.csv"]


def test_an_error_leaves_the_old_output_and_no_half_written_one(tmp_path):
    path = tmp_path / "table.csv"
    atomic_write_text(path, "old\n")
    with pytest.raises(RuntimeError), atomic_output(path) as staging:
        staging.write_text("half")
        raise RuntimeError("interrupted")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]


def test_a_folder_is_renamed_into_place_and_never_onto_another(tmp_path):
    target = tmp_path / "model"
    with atomic_output(target) as staging:
        staging.mkdir()
        (staging / "config.json").write_text("{}")
    assert (target / "config.json").read_text() == "{}"
    with pytest.raises(OSError), atomic_output(target) as staging:  # another process was first
        staging.mkdir()
        (staging / "config.json").write_text('{"second": true}')
    assert (target / "config.json").read_text() == "{}"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
