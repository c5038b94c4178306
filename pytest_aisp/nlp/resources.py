"""Offline resources: the packaged word lists and tables, and WordNet read from local files.

Nothing here downloads. WordNet comes from Debian's ``wordnet-base`` (``/usr/share/wordnet``), from a
folder named by ``AISP_WORDNET_DIR`` or from a path the caller gives; NLTK's own reader parses it.
"""

from __future__ import annotations

import functools
import io
import os
import shutil
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pytest_aisp.findings import AispError, BackendMissing

DEBIAN_WORDNET = Path("/usr/share/wordnet")
WORDNET_INSTALL = "apt-get install -y wordnet-base wordnet-sense-index"
WORDNET_FILES = (
    "data.noun",
    "data.verb",
    "data.adj",
    "data.adv",
    "index.noun",
    "index.verb",
    "index.adj",
    "index.adv",
    "noun.exc",
    "verb.exc",
    "adj.exc",
    "adv.exc",
)
GROUP_FILES = ("gender", "names", "religion", "nationality")


def data_text(name: str) -> str:
    """The text of a packaged data file (``pytest_aisp/nlp/data/<name>``)."""
    return resources.files("pytest_aisp.nlp.data").joinpath(name).read_text(encoding="utf-8")


def _data_lines(name: str) -> list[str]:
    return [line for line in data_text(name).splitlines() if line.strip() and not line.startswith("#")]


@functools.lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    """The packaged English stop words (NLTK's 179-word list), lower case."""
    return frozenset(line.strip().lower() for line in _data_lines("stopwords_en.txt"))


@functools.lru_cache(maxsize=1)
def confusables() -> dict[str, tuple[str, ...]]:
    """ASCII letter or digit -> characters that look alike (from Unicode TR39 confusables.txt)."""
    table: dict[str, tuple[str, ...]] = {}
    for line in _data_lines("confusables.txt"):
        ascii_char, codes = line.split("\t")
        table[ascii_char] = tuple(chr(int(code, 16)) for code in codes.split())
    return table


@dataclass(frozen=True)
class GroupTerms:
    """Aligned term lists: ``rows[i][j]`` is term ``i`` of group ``groups[j]``."""

    name: str
    groups: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    source: str

    def terms_of(self, group: str) -> tuple[str, ...]:
        column = self.groups.index(group)
        return tuple(row[column] for row in self.rows)


@functools.cache
def group_terms(name: str) -> GroupTerms:
    """A packaged group word list: ``gender``, ``names``, ``religion`` or ``nationality``."""
    if name not in GROUP_FILES:
        raise AispError(f"unknown group list {name!r}; use one of: {', '.join(GROUP_FILES)}")
    text = data_text(f"group_{name}.txt")
    source = " ".join(line.lstrip("# ").strip() for line in text.splitlines() if line.startswith("#"))
    lines = _data_lines(f"group_{name}.txt")
    header = tuple(lines[0].split("\t"))
    rows = tuple(tuple(cell.strip().lower() for cell in line.split("\t")) for line in lines[1:])
    return GroupTerms(name=name, groups=header, rows=rows, source=source)


def wordnet_source(path: str | os.PathLike[str] | None = None) -> Path:
    """The folder holding WordNet 3.0 database files, or ``BackendMissing`` with the install line."""
    candidates = [Path(path)] if path is not None else []
    if path is None:
        if os.environ.get("AISP_WORDNET_DIR"):
            candidates.append(Path(os.environ["AISP_WORDNET_DIR"]))
        candidates.append(DEBIAN_WORDNET)
    for folder in candidates:
        if all((folder / name).is_file() for name in WORDNET_FILES):
            return folder
    where = ", ".join(str(c) for c in candidates)
    raise BackendMissing(
        "wordnet",
        "",
        f"WordNet database files were not found in {where}; install them with "
        f"`{WORDNET_INSTALL}` (Debian/Ubuntu) or pass the folder holding data.noun, index.noun ...",
    )


def cache_dir() -> Path:
    """Where assembled resource folders live: ``AISP_CACHE_DIR`` or ``~/.cache/pytest-aisp``."""
    root = os.environ.get("AISP_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "pytest-aisp")
    return Path(root)


def assemble_wordnet(target: Path, source: Path) -> Path:
    """Lay out ``target`` as an NLTK ``corpora/wordnet`` folder with copies of the files in ``source``.

    NLTK refuses symlinks and hard links that lead outside its data root, so the files are copied.
    Debian's package lacks ``lexnames`` (the fixed list of lexicographer files), which NLTK's reader
    opens first: it is written from the packaged copy.
    """
    target.mkdir(parents=True, exist_ok=True)
    for name in (*WORDNET_FILES, "cntlist.rev", "index.sense"):
        src, dst = source / name, target / name
        if src.is_file() and not dst.exists():
            shutil.copyfile(src, dst)
    lexnames = target / "lexnames"
    if not lexnames.exists():
        lexnames.write_text(data_text("wordnet_lexnames.txt"), encoding="utf-8")
    return target


@functools.lru_cache(maxsize=4)
def wordnet_reader(path: str | None = None) -> Any:
    """NLTK's ``WordNetCorpusReader`` over local WordNet files (never a download)."""
    source = wordnet_source(path)
    try:
        import nltk.data
        from nltk.corpus.reader.wordnet import WordNetCorpusReader
    except ImportError as exc:
        raise BackendMissing("nltk", "nlp", "the synonym attacks read WordNet with NLTK") from exc
    # NLTK reads only below its data path.
    root = str(source.resolve())
    if root not in nltk.data.path:
        nltk.data.path.append(root)

    class _LocalWordNet(WordNetCorpusReader):  # type: ignore[misc]
        """NLTK's reader, with ``lexnames`` from the package where the folder lacks it."""

        def open(self, fileid: str) -> Any:
            if fileid == "lexnames" and not (source / "lexnames").is_file():
                return io.StringIO(data_text("wordnet_lexnames.txt"))
            return super().open(fileid)

        def map_wn(self, version: str = "wordnet") -> None:
            return None  # the version map serves multilingual WordNets, which are not loaded here

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "multilingual functions are not available": not used here
        return _LocalWordNet(root, None)
