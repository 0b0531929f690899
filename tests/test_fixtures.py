import json
from collections import Counter

from stilts_core.data.fixtures import fixture_files, tatoeba_pairs, write_fixtures, xnli_examples


def test_committed_fixtures_are_exactly_what_the_generator_writes(tmp_path, fixtures_root):
    for path in write_fixtures(tmp_path):
        relative = path.relative_to(tmp_path)
        assert (fixtures_root / relative).read_text() == path.read_text(), relative


def test_xnli_fixture_covers_at_least_three_languages_and_balanced_labels():
    files = fixture_files()
    languages = {name.split("-")[1].split(".")[0] for name in files if name.startswith("xnli/test")}
    assert len(languages) >= 3
    counts = Counter(row["label"] for row in xnli_examples("de", 300, seed=1))
    assert min(counts.values()) > 70


def test_labels_follow_the_documented_rule():
    for row in xnli_examples("en", 200, seed=3):
        premise_name, premise_n = row["premise"].split()[0], row["premise"].split()[2]
        hyp_name, hyp_n = row["hypothesis"].split()[0], row["hypothesis"].split()[2]
        if hyp_name != premise_name:
            assert row["label"] == 1
        else:
            assert row["label"] == (0 if hyp_n == premise_n else 2)


def test_tatoeba_pairs_are_distinct_and_in_hub_schema(fixtures_root):
    pairs = tatoeba_pairs("fr", 200, seed=5)
    assert len({p["source_sentence"] for p in pairs}) == 200
    line = json.loads((fixtures_root / "tatoeba" / "test-fr.jsonl").read_text().splitlines()[0])
    assert set(line) == {"source_sentence", "target_sentence", "source_lang", "target_lang"}
