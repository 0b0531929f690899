"""Where the morphology measures come from: the settings of a build, the sources and their
versions (one place for every URL), the downloads and the treebank list."""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
import urllib.request
import zipfile
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from stilts_core.paths import atomic_write_text, data_dir
from stilts_core.tasks.registry import get_task

logger = logging.getLogger(__name__)

FAMILIES = ("wals", "corpus", "treebank", "tokenizer")
COLUMNS = ["language", "family", "measure", "value", "source", "source_version", "n_tokens", "note",
           "primary"]
OUTPUT_DIR = data_dir() / "morphology"


class MorphologyError(ValueError):
    """A source file is missing or malformed; the message names the file and the fix."""


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MorphologySettings(Frozen):
    """Every choice that changes a number; written beside the tables (``settings.json``)."""

    mattr_window: int = Field(500, ge=10, description="MATTR window in words (Covington & "
                                                      "McFall 2010 use 500)")
    ud_sample_size: int = Field(5000, ge=100, description="words per UD sample: every treebank "
                                                          "is measured on equal-sized samples")
    ud_samples: int = Field(20, ge=1, description="random samples per treebank (mean reported)")
    seed: int = 0
    lemma_coverage_min: float = Field(0.9, description="share of words with a LEMMA below "
                                                       "which a treebank counts as unlemmatised")
    feats_coverage_min: float = Field(0.05, description="share of words with FEATS below "
                                                        "which a treebank counts as unannotated")
    wals_min_features: int = Field(3, ge=1, description="composite features a language needs "
                                                        "for a WALS synthesis index")


def index_row(language: str, family: str, measure: str, value: float | None, source: str,
              source_version: str, n_tokens: int | None = None, note: str = "",
              primary: bool = True) -> dict:
    """One row of the long table; a value the data cannot give is None with a note, never
    0, and a value that is not finite is a bug."""
    if value is not None and not math.isfinite(value):
        raise ArithmeticError(f"{measure} for {language} is {value}")
    return {"language": language, "family": family, "measure": measure, "value": value,
            "source": source, "source_version": source_version, "n_tokens": n_tokens,
            "note": note, "primary": primary}


# --- where the sources are (one place for every URL) --------------------------------------------

# ``--download`` fetches exactly the files the committed tables were computed from: one row per
# file with its repository, commit and SHA-256 (the commits are the data pack's, mostly branch
# heads of their day rather than release tags; WALS is the v2020.4 release commit).
DOWNLOAD_SOURCES = data_dir() / "morphology" / "sources.tsv"
SOURCE_URLS = {
    "archive": "https://github.com/{repository}/archive/{commit}.zip",
    "raw": "https://raw.githubusercontent.com/{repository}/{commit}/{source_path}",
}
MISSING_FILE = "MISSING.tsv"


class Treebank(Frozen):
    language: str
    repository: str  # UniversalDependencies/<repository>
    file: str
    kind: str  # "main" (XTREME-R's UD-POS treebank where available) or "pud" (parallel)

    def path(self, root: Path) -> Path:
        return root / "ud" / ("pud" if self.kind == "pud" else "") / self.file

    @property
    def relative_path(self) -> str:
        return f"ud/pud/{self.file}" if self.kind == "pud" else f"ud/{self.file}"


def _treebanks(kind: str, listing: str) -> tuple[Treebank, ...]:
    """``listing``: one ``language repository file-stem`` per line."""
    return tuple(Treebank(language=lang, repository=f"UD_{repo}", file=f"{stem}-ud-test.conllu",
                          kind=kind)
                 for lang, repo, stem in (line.split() for line in listing.strip().splitlines()))


# Thai has no "main" row: XTREME's UD-POS Thai treebank is Thai-PUD, so its PUD row is primary.
TREEBANKS: tuple[Treebank, ...] = _treebanks("main", """
af Afrikaans-AfriBooms af_afribooms
bg Bulgarian-BTB bg_btb
de German-GSD de_gsd
el Greek-GDT el_gdt
en English-EWT en_ewt
es Spanish-AnCora es_ancora
et Estonian-EDT et_edt
eu Basque-BDT eu_bdt
fa Persian-PerDT fa_perdt
fi Finnish-TDT fi_tdt
fr French-GSD fr_gsd
he Hebrew-HTB he_htb
hu Hungarian-Szeged hu_szeged
id Indonesian-GSD id_gsd
it Italian-ISDT it_isdt
ja Japanese-GSD ja_gsd
kk Kazakh-KTB kk_ktb
ko Korean-Kaist ko_kaist
lt Lithuanian-ALKSNIS lt_alksnis
mr Marathi-UFAL mr_ufal
nl Dutch-Alpino nl_alpino
pl Polish-PDB pl_pdb
pt Portuguese-Bosque pt_bosque
ro Romanian-RRT ro_rrt
ru Russian-GSD ru_gsd
ta Tamil-TTB ta_ttb
te Telugu-MTG te_mtg
tl Tagalog-TRG tl_trg
tr Turkish-BOUN tr_boun
uk Ukrainian-IU uk_iu
ur Urdu-UDTB ur_udtb
vi Vietnamese-VTB vi_vtb
wo Wolof-WTB wo_wtb
yo Yoruba-YTB yo_ytb
zh Chinese-GSD zh_gsd
""") + _treebanks("pud", "\n".join(
    f"{lang} {name}-PUD {lang}_pud" for lang, name in (
        ("ar", "Arabic"), ("de", "German"), ("en", "English"), ("es", "Spanish"),
        ("fi", "Finnish"), ("fr", "French"), ("hi", "Hindi"), ("id", "Indonesian"),
        ("it", "Italian"), ("ja", "Japanese"), ("ko", "Korean"), ("pl", "Polish"),
        ("pt", "Portuguese"), ("ru", "Russian"), ("th", "Thai"), ("tr", "Turkish"),
        ("zh", "Chinese"))))


def tatoeba_files(language: str) -> tuple[str, str] | None:
    """LASER's file names of the (language side, English side) pairs, or None."""
    code = get_task("tatoeba").language_codes.get(language)
    return None if code is None else (f"tatoeba/tatoeba.{code}-eng.{code}",
                                      f"tatoeba/tatoeba.{code}-eng.eng")


class SourceVersions:
    """``path -> repository@commit`` from the data pack's ``MANIFEST.tsv`` (the shared pack and
    ``download_sources`` both write one), so every number names the file version it came from."""

    def __init__(self, root: Path):
        self.root = root
        manifest = root / "MANIFEST.tsv"
        self.table = (pd.read_csv(manifest, sep="\t", dtype=str).set_index("path")
                      if manifest.exists() else None)

    def __call__(self, relative_path: str) -> str:
        if self.table is None or relative_path not in self.table.index:
            return f"local file {relative_path} (no MANIFEST.tsv entry)"
        row = self.table.loc[relative_path]
        return f"{row['source_repo']}@{str(row['source_commit'])[:12]}"


def source_url(row: dict) -> str:
    """Where one pinned source file is fetched from (a whole-repository archive for WALS)."""
    template = SOURCE_URLS["archive" if row["path"].endswith(".zip") else "raw"]
    return template.format(**row)


def download_sources(target: Path, sources: Path = DOWNLOAD_SOURCES) -> Path:
    """Fetch every pinned source file into ``target`` in the layout the build reads, check its
    SHA-256, and write ``MANIFEST.tsv``. A file that cannot be fetched (or differs) is listed in
    ``MISSING.tsv`` with its URL and the reason instead of stopping the others; a missing
    treebank is then reported in the tables, a missing WALS or Tatoeba file stops the build."""
    import hashlib

    target.mkdir(parents=True, exist_ok=True)
    rows = pd.read_csv(sources, sep="\t", dtype=str, keep_default_na=False).to_dict("records")
    fetched, missing = [], []
    for row in rows:
        url, destination = source_url(row), target / row["path"]
        if not destination.exists():
            logger.info(f"[morphology] downloading {url}")
            destination.parent.mkdir(parents=True, exist_ok=True)
            partial = destination.with_name(f".{destination.name}.part")
            try:
                with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
                    shutil.copyfileobj(response, out)
            except OSError as error:
                partial.unlink(missing_ok=True)
                missing.append({"path": row["path"], "url": url, "reason": str(error)})
                continue
            digest = hashlib.sha256(partial.read_bytes()).hexdigest()
            if row["sha256"] and digest != row["sha256"]:
                partial.unlink()
                missing.append({"path": row["path"], "url": url, "reason": f"SHA-256 {digest} is "
                                f"not the committed tables' {row['sha256']}"})
                continue
            partial.replace(destination)
        fetched.append({"path": row["path"], "source_repo": row["repository"],
                        "source_commit": row["commit"], "source_url": url})
    archive = next((r for r in fetched if r["path"].endswith(".zip")), None)
    if archive is not None:
        with zipfile.ZipFile(target / archive["path"]) as zipped, tempfile.TemporaryDirectory() as tmp:
            zipped.extractall(tmp)
            (cldf,) = Path(tmp).glob("*/cldf")
            if (target / "wals").exists():
                shutil.rmtree(target / "wals")
            shutil.copytree(cldf, target / "wals")
        fetched += [{**archive, "path": f"wals/{path.name}"}
                    for path in sorted((target / "wals").glob("*.csv"))]
    atomic_write_text(target / "MANIFEST.tsv", pd.DataFrame(fetched).to_csv(sep="\t", index=False))
    table = pd.DataFrame(missing, columns=["path", "url", "reason"])
    atomic_write_text(target / MISSING_FILE, table.to_csv(sep="\t", index=False))
    for row in missing:
        logger.warning(f"[morphology] could not fetch {row['path']}: {row['url']} ({row['reason']})")
    return target


def missing_sources(root: Path) -> dict[str, str]:
    """``path -> 'URL (reason)'`` of the files ``download_sources`` could not fetch."""
    path = root / MISSING_FILE
    if not path.exists():
        return {}
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    return {row.path: f"{row.url} ({row.reason})" for row in table.itertuples()}
