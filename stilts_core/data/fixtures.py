"""Generate the small bundled fixture data sets under ``data/fixtures/`` (run ``stilts fixtures``).

They follow the hub schemas of MNLI (intermediate task), XNLI (target task) and Tatoeba
(retrieval), in English, German, French and Spanish, built from hand-translated templates. They
are *learnable*: the NLI label is decided by whether the hypothesis repeats the premise's person
(names are shared across languages) and number (digits are shared), so a model can beat chance
and, through the shared tokens, can even transfer across languages. They test the pipeline; they
say nothing about real cross-lingual transfer.
"""

from __future__ import annotations

import random
from pathlib import Path

from stilts_core.data.readers import write_jsonl

LANGUAGES = ("en", "de", "fr", "es")
NAMES = ("Anna", "Marco", "Lena", "Omar", "Sofia", "Jonas", "Clara", "Ivan", "Nina", "Paul",
         "Yuki", "Amir", "Elena", "Tomas", "Mira", "Hugo")
NOUNS = {
    "en": ("apples", "books", "cats", "cars", "flowers", "chairs", "letters", "keys"),
    "de": ("Äpfel", "Bücher", "Katzen", "Autos", "Blumen", "Stühle", "Briefe", "Schlüssel"),
    "fr": ("pommes", "livres", "chats", "voitures", "fleurs", "chaises", "lettres", "clés"),
    "es": ("manzanas", "libros", "gatos", "coches", "flores", "sillas", "cartas", "llaves"),
}
PLACES = {
    "en": ("in the garden", "at home", "in the city", "at school"),
    "de": ("im Garten", "zu Hause", "in der Stadt", "in der Schule"),
    "fr": ("dans le jardin", "à la maison", "en ville", "à l'école"),
    "es": ("en el jardín", "en casa", "en la ciudad", "en la escuela"),
}
# XNLI-style templates (target task): premise states a count, hypothesis restates one.
HAS = {"en": "{name} has {n} {noun} {place}.", "de": "{name} hat {n} {noun} {place}.",
       "fr": "{name} a {n} {noun} {place}.", "es": "{name} tiene {n} {noun} {place}."}
OWNS = {"en": "{name} owns {n} {noun}.", "de": "{name} besitzt {n} {noun}.",
        "fr": "{name} possède {n} {noun}.", "es": "{name} posee {n} {noun}."}
# MNLI-style templates (intermediate task, English only): same logic, other wording.
BOUGHT = "Yesterday {name} bought {n} {noun} {place}, and everyone was surprised."
HYPOTHESES_EN = ("{name} bought {n} {noun}.", "{name} came home with {n} {noun}.")

LABELS = ("entailment", "neutral", "contradiction")


def _nli_example(rng: random.Random, language: str, premise_template: str,
                 hypothesis_templates: tuple[str, ...]) -> dict:
    name, other = rng.sample(NAMES, 2)
    n = rng.randint(2, 19)
    noun_index = rng.randrange(len(NOUNS["en"]))
    noun = NOUNS[language][noun_index]
    place = rng.choice(PLACES[language])
    premise = premise_template.format(name=name, n=n, noun=noun, place=place)
    label = rng.randrange(3)
    if label == 0:  # entailment: same person, same number
        hyp_name, hyp_n = name, n
    elif label == 1:  # neutral: another person, so the premise says nothing about them
        hyp_name, hyp_n = other, rng.choice((n, rng.randint(2, 19)))
    else:  # contradiction: same person, another number
        hyp_name, hyp_n = name, rng.choice([m for m in range(2, 20) if m != n])
    hypothesis = rng.choice(hypothesis_templates).format(name=hyp_name, n=hyp_n, noun=noun)
    return {"premise": premise, "hypothesis": hypothesis, "label": label}


def mnli_examples(count: int, seed: int) -> list[dict]:
    """Two 'genres', like MNLI: the English XNLI wording and a wording of its own. MNLI is
    XNLI's English training set, so its fixture must cover the XNLI wording too."""
    rng = random.Random(seed)
    genres = ((BOUGHT, HYPOTHESES_EN), (HAS["en"], (OWNS["en"],)))
    rows = [_nli_example(rng, "en", *genres[index % 2]) for index in range(count)]
    for index, row in enumerate(rows):
        row["idx"] = index
    return rows


def xnli_examples(language: str, count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [_nli_example(rng, language, HAS[language], (OWNS[language],)) for _ in range(count)]


def tatoeba_pairs(language: str, count: int, seed: int) -> list[dict]:
    """Translation pairs (language, English) with the XTREME Tatoeba schema; all distinct."""
    rng = random.Random(seed)
    seen, rows = set(), []
    while len(rows) < count:
        name = rng.choice(NAMES)
        n = rng.randint(2, 99)
        noun_index = rng.randrange(len(NOUNS["en"]))
        place_index = rng.randrange(len(PLACES["en"]))
        key = (name, n, noun_index, place_index)
        if key in seen:
            continue
        seen.add(key)

        def sentence(lang: str, key=key) -> str:
            return HAS[lang].format(name=key[0], n=key[1], noun=NOUNS[lang][key[2]],
                                    place=PLACES[lang][key[3]])

        rows.append({"source_sentence": sentence(language), "target_sentence": sentence("en"),
                     "source_lang": language, "target_lang": "en"})
    return rows


def fixture_files() -> dict[str, list[dict]]:
    """Relative path under the fixtures root -> rows. Sizes keep the smoke run to minutes."""
    files = {
        "mnli/train-en.jsonl": mnli_examples(3000, seed=11),
        "mnli/validation-en.jsonl": mnli_examples(300, seed=12),
        "xnli/validation-en.jsonl": xnli_examples("en", 300, seed=22),
    }
    for offset, language in enumerate(LANGUAGES):
        files[f"xnli/test-{language}.jsonl"] = xnli_examples(language, 300, seed=30 + offset)
    for offset, language in enumerate(LANGUAGES[1:]):
        files[f"tatoeba/test-{language}.jsonl"] = tatoeba_pairs(language, 200, seed=40 + offset)
    return files


def write_fixtures(root: Path) -> list[Path]:
    written = []
    for relative, rows in fixture_files().items():
        path = Path(root) / relative
        write_jsonl(path, rows)
        written.append(path)
    return written
