"""Offline resources: the packaged word lists and tables, and WordNet read from local files.

Nothing here downloads. WordNet 3.0 ships inside the package as a compact table of lemmas and senses
(``data/wordnet30.txt.xz``, licence in ``data/wordnet_LICENSE.txt``), rebuilt once into a database in
WordNet's own format under the cache folder; NLTK's reader parses it, so every machine gets the same
synonyms with no system package. A full WordNet (glosses and relations too, e.g. Debian's
``wordnet-base`` in ``/usr/share/wordnet``) is used instead when named by ``AISP_WORDNET_DIR`` or by the
caller.
"""

from __future__ import annotations

import functools
import hashlib
import io
import lzma
import os
import shutil
import tempfile
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


PACKAGED_WORDNET = "wordnet30.txt.xz"
# bump when write_wordnet_database writes something new: a rebuilt database then goes into a fresh folder
DATABASE_FORMAT = 2
_POS_SUFFIX = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}


def wordnet_source(path: str | os.PathLike[str] | None = None) -> Path:
    """The folder holding WordNet 3.0 database files: ``path``, else ``AISP_WORDNET_DIR``, else the
    database rebuilt from the packaged table. A named folder without the files is an ``AispError``."""
    named = Path(path) if path is not None else None
    source = "the wordnet path"
    if named is None and os.environ.get("AISP_WORDNET_DIR"):
        named, source = Path(os.environ["AISP_WORDNET_DIR"]), "AISP_WORDNET_DIR"
    if named is None:
        return packaged_wordnet()
    if all((named / name).is_file() for name in WORDNET_FILES):
        return named
    missing = [name for name in WORDNET_FILES if not (named / name).is_file()]
    raise AispError(
        f"{source} {named} is not a WordNet 3.0 database folder (missing {', '.join(missing[:4])}"
        f"{' ...' if len(missing) > 4 else ''}); point it at a folder holding data.noun, index.noun ... "
        f"(Debian: `{WORDNET_INSTALL}` installs them in {DEBIAN_WORDNET}), or unset it to use the "
        "WordNet 3.0 table that ships with pytest-aisp"
    )


def packaged_wordnet() -> Path:
    """The WordNet database rebuilt from the packaged table (once per table version, in the cache)."""
    blob = resources.files("pytest_aisp.nlp.data").joinpath(PACKAGED_WORDNET).read_bytes()
    digest = hashlib.sha256(blob + str(DATABASE_FORMAT).encode()).hexdigest()[:12]
    target = cache_dir() / f"wordnet30-{digest}"
    if all((target / name).is_file() for name in (*WORDNET_FILES, "index.sense")):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".wordnet-", dir=target.parent))
    try:
        write_wordnet_database(lzma.decompress(blob).decode("utf-8"), staging)
        try:
            staging.rename(target)  # atomic: a concurrent worker either wins or finds it complete
        except OSError:
            if not all((target / name).is_file() for name in WORDNET_FILES):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def write_wordnet_database(table: str, folder: Path) -> None:
    """Write ``data.*``, ``index.*``, ``*.exc`` and ``lexnames`` in WordNet's format from the compact table
    (synsets keep their lemmas and lex ids; glosses and relations are empty)."""
    sections: dict[tuple[str, str], list[str]] = {}
    current: list[str] = []
    for line in table.splitlines():
        if line.startswith("@"):
            kind, pos = line[1:].split()
            current = sections.setdefault((kind, pos), [])
        elif not line.startswith("#"):
            current.append(line)
    notice = "".join(f"  {i} {text}\n" for i, text in enumerate(_licence_lines(), 1))
    sense_index: list[str] = []
    for pos, suffix in _POS_SUFFIX.items():
        offsets: list[int] = []
        lines: list[str] = []
        position = len(notice.encode("latin-1"))
        rows = [row.split(" & ") for row in sections.get(("synsets", pos), [])]
        for fields in rows:
            lexfile, sstype, *words = fields[0].split()
            # a satellite's "&" pointers name head synsets by ordinal: their offsets are fixed once every
            # line's length is known, and an offset is always 8 digits, so the lengths do not depend on them
            pointers = len(fields[1].split()) if len(fields) > 1 else 0
            body = f" {lexfile} {sstype} {len(words) // 2:02x} {' '.join(words)} {pointers:03d}"
            offsets.append(position)
            position += len(f"{position:08d}{body}".encode("latin-1")) + len(" & 00000000 a 0000") * pointers + 4
        for start, fields in zip(offsets, rows):
            lexfile, sstype, *words = fields[0].split()
            heads = fields[1].split() if len(fields) > 1 else []
            pointer_text = "".join(f" & {offsets[int(h)]:08d} a 0000" for h in heads)
            lines.append(f"{start:08d} {lexfile} {sstype} {len(words) // 2:02x} {' '.join(words)} "
                         f"{len(heads):03d}{pointer_text} | \n")
        (folder / f"data.{suffix}").write_text(notice + "".join(lines), encoding="latin-1")
        index = []
        for row in sections.get(("index", pos), []):
            lemma, tagsense, *ordinals = row.split()
            senses = " ".join(f"{offsets[int(k)]:08d}" for k in ordinals)
            index.append(f"{lemma} {pos} {len(ordinals)} 0 {len(ordinals)} {tagsense} {senses}  \n")
        (folder / f"index.{suffix}").write_text(notice + "".join(index), encoding="latin-1")
        sense_index.extend(_sense_lines(pos, rows, offsets, sections.get(("index", pos), [])))
        exceptions = sections.get(("exc", pos), [])
        (folder / f"{suffix}.exc").write_text("".join(f"{e}\n" for e in exceptions), encoding="latin-1")
    # a synset may list one lemma in two spellings ("A", "a"): one sense key each, as in WordNet's own file
    unique = {line.split(" ", 1)[0]: line for line in reversed(sense_index)}
    (folder / "index.sense").write_text("".join(sorted(unique.values())), encoding="latin-1")
    (folder / "lexnames").write_text(data_text("wordnet_lexnames.txt"), encoding="utf-8")
    (folder / "LICENSE").write_text(data_text("wordnet_LICENSE.txt"), encoding="utf-8")


_SS_TYPE_NUMBER = {"n": 1, "v": 2, "a": 3, "r": 4, "s": 5}


def _sense_lines(pos: str, rows: list[list[str]], offsets: list[int], index: list[str]) -> list[str]:
    """``index.sense`` lines (``sense_key offset sense_number tag_cnt``) of one part of speech; NLTK's reader
    maps WordNet versions through them. Tag counts are not in the table and are written as 0."""
    sense_number: dict[tuple[str, int], int] = {}
    for row in index:
        lemma, _, *ordinals = row.split()
        for number, ordinal in enumerate(ordinals, 1):
            sense_number[(lemma, int(ordinal))] = number
    lines = []
    for ordinal, fields in enumerate(rows):
        lexfile, sstype, *words = fields[0].split()
        head = ""
        if sstype == "s" and len(fields) > 1:
            head_words = rows[int(fields[1].split()[0])][0].split()[2:]
            head = f"{_bare(head_words[0])}:{int(head_words[1], 16):02d}"
        for word, lex_id in zip(words[::2], words[1::2]):
            lemma = _bare(word)
            key = f"{lemma}%{_SS_TYPE_NUMBER[sstype]}:{lexfile}:{int(lex_id, 16):02d}:{head or ':'}"
            number = sense_number.get((lemma, ordinal), 0)
            lines.append(f"{key} {offsets[ordinal]:08d} {number} 0\n")
    return lines


def _bare(word: str) -> str:
    """A data-file word as it appears in sense keys: lower case, without an adjective marker like ``(a)``."""
    return word.split("(", 1)[0].lower()


def _licence_lines() -> list[str]:
    return [line for line in data_text("wordnet_LICENSE.txt").splitlines() if line.strip()]


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
