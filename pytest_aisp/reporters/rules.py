"""What each rule means, taken from the rule tables in ``docs/``: the metadata SARIF and SonarQube show.

The tables in the module pages (id, severity, meaning, fix) are the source; ``rules.json`` beside this
file is generated from them, so the installed package carries them without the docs:

    python -m pytest_aisp.reporters.rules docs    # rewrite rules.json after editing a rule table

A test checks that ``rules.json`` matches the docs. A rule's *nominal* severity is the first one its
table row names; a finding raised at another severity is reported under a sub-rule
``RULE/severity`` (see :func:`descriptor_id`), so GitHub ranks it by its own severity.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pytest_aisp.findings import Severity

CATALOGUE = Path(__file__).with_name("rules.json")
DOCS_URL = "https://github.com/pytest-aisp/pytest-aisp/blob/main/docs/{page}.md"
_RULE_ID = re.compile(r"^`?(AISP-[A-Z0-9]+(?:-[A-Z0-9]+)+)`?$")
_SEVERITY_WORD = re.compile(r"\b(critical|high|medium|low|info)\b", re.IGNORECASE)
_ID_HEADERS = {"id", "rule id", "rule"}
_MEANING_HEADERS = {"meaning", "what it means"}
_FIX_HEADERS = {"fix", "how to fix"}


@dataclass(frozen=True)
class RuleDoc:
    """One rule as its docs page describes it."""

    rule_id: str
    page: str
    anchor: str
    severities: tuple[Severity, ...]
    meaning: str
    fix: str
    extra: str = ""  # further columns, e.g. "OWASP LLM Top 10 (2025): LLM01 Prompt Injection"

    @property
    def nominal(self) -> Severity:
        """The severity the rule is documented with first: what GitHub ranks the rule by."""
        return self.severities[0] if self.severities else Severity.MEDIUM

    @property
    def help_uri(self) -> str:
        return DOCS_URL.format(page=self.page) + (f"#{self.anchor}" if self.anchor else "")

    def to_dict(self) -> dict[str, object]:
        return {"page": self.page, "anchor": self.anchor, "severities": [s.value for s in self.severities],
                "meaning": self.meaning, "fix": self.fix, "extra": self.extra}


def descriptor_id(rule_id: str, severity: Severity) -> str:
    """The SARIF/SonarQube rule a finding is reported under: the rule itself at its nominal severity,
    ``RULE/severity`` at any other (GitHub reads the security severity from the rule only)."""
    doc = rule_doc(rule_id)
    if doc is None or severity == doc.nominal:
        return rule_id
    return f"{rule_id}/{severity.value}"


def split_descriptor(descriptor: str) -> tuple[str, Severity | None]:
    """``AISP-X/critical`` -> (``AISP-X``, critical); ``AISP-X`` -> (``AISP-X``, None)."""
    rule_id, _, severity = descriptor.partition("/")
    try:
        return rule_id, Severity.parse(severity) if severity else None
    except ValueError:
        return descriptor, None


@lru_cache(maxsize=1)
def catalogue() -> Mapping[str, RuleDoc]:
    """Every documented rule, by id, from the packaged ``rules.json``."""
    try:
        data = json.loads(CATALOGUE.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # pragma: no cover - a broken installation
        return {}
    return {rule_id: _from_dict(rule_id, raw) for rule_id, raw in data.items()}


def rule_doc(rule_id: str) -> RuleDoc | None:
    """The documented rule ``rule_id``, or None for a rule no docs table lists."""
    return catalogue().get(rule_id)


def _from_dict(rule_id: str, raw: Mapping[str, object]) -> RuleDoc:
    return RuleDoc(
        rule_id=rule_id, page=str(raw["page"]), anchor=str(raw.get("anchor", "")),
        severities=tuple(Severity.parse(str(s)) for s in raw.get("severities", [])),  # type: ignore[union-attr]
        meaning=str(raw.get("meaning", "")), fix=str(raw.get("fix", "")), extra=str(raw.get("extra", "")),
    )


# --- reading the docs' tables ------------------------------------------------------------------------


def parse_rule_tables(page: str, markdown: str) -> list[RuleDoc]:
    """Every rule row of every rule table in one docs page (rows of one rule id are merged)."""
    rows: dict[str, list[tuple[tuple[Severity, ...], str, str, str, str]]] = {}
    anchors: dict[str, str] = {}
    heading = ""
    lines = markdown.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index].strip()
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        if _is_row(line) and index + 1 < len(lines) and _is_separator(lines[index + 1].strip()):
            titles = _cells(line)
            header = [c.lower() for c in titles]
            columns = _columns(header)
            index += 2
            while index < len(lines) and _is_row(lines[index].strip()):
                cells = _cells(lines[index].strip())
                if columns and len(cells) == len(header):
                    match = _RULE_ID.match(cells[columns["id"]])
                    if match:
                        rule_id = match.group(1)
                        extra = "; ".join(f"{titles[i]}: {cells[i]}" for i in columns["extra"] if cells[i])
                        severity_text = cells[columns["severity"]]
                        severities = tuple(Severity.parse(w) for w in _SEVERITY_WORD.findall(severity_text))
                        rows.setdefault(rule_id, []).append(
                            (severities, severity_text, cells[columns["meaning"]], cells[columns["fix"]], extra))
                        anchors.setdefault(rule_id, _anchor(heading))
                index += 1
            continue
        index += 1
    return [_merge(rule_id, page, anchors[rule_id], found) for rule_id, found in rows.items()]


def parse_docs(docs: Path) -> dict[str, RuleDoc]:
    """Every rule of every page in ``docs`` (``*.md``), by id; a rule documented twice is an error."""
    found: dict[str, RuleDoc] = {}
    for path in sorted(docs.glob("*.md")):
        for doc in parse_rule_tables(path.stem, path.read_text(encoding="utf-8")):
            if doc.rule_id in found:
                raise ValueError(f"{doc.rule_id} is documented in both {found[doc.rule_id].page}.md and {path.name}")
            found[doc.rule_id] = doc
    return found


def catalogue_json(docs: Iterable[RuleDoc]) -> str:
    """The text of ``rules.json`` for ``docs``."""
    return json.dumps({d.rule_id: d.to_dict() for d in sorted(docs, key=lambda d: d.rule_id)},
                      indent=1, ensure_ascii=False) + "\n"


def _merge(rule_id: str, page: str, anchor: str,
           rows: list[tuple[tuple[Severity, ...], str, str, str, str]]) -> RuleDoc:
    severities: list[Severity] = []
    for row_severities, *_ in rows:
        severities += [s for s in row_severities if s not in severities]
    if len(rows) == 1:
        _, _, meaning, fix, extra = rows[0]
    else:  # one row per severity (robust.md): say which meaning goes with which severity
        meaning = "; ".join(f"{text} ({label})" for _, label, text, _, _ in rows)
        fixes: list[str] = []
        for _, _, _, text, _ in rows:
            if text not in fixes:
                fixes.append(text)
        fix = "; ".join(fixes)
        extra = rows[0][4]
    return RuleDoc(rule_id, page, anchor, tuple(severities), meaning, fix, extra)


def _columns(header: list[str]) -> dict[str, int | list[int]] | None:
    named = {
        "id": next((i for i, h in enumerate(header) if h in _ID_HEADERS), None),
        "severity": next((i for i, h in enumerate(header) if "severity" in h), None),
        "meaning": next((i for i, h in enumerate(header) if h in _MEANING_HEADERS), None),
        "fix": next((i for i, h in enumerate(header) if h in _FIX_HEADERS), None),
    }
    if any(i is None for i in named.values()):
        return None
    columns: dict[str, int | list[int]] = {k: v for k, v in named.items() if v is not None}
    columns["extra"] = [i for i in range(len(header)) if i not in named.values()]
    return columns


def _is_row(line: str) -> bool:
    return line.startswith("|") and line.endswith("|")


def _is_separator(line: str) -> bool:
    return _is_row(line) and all(set(c.strip()) <= set("-: ") and c.strip() for c in _cells(line))


def _cells(line: str) -> list[str]:
    parts = re.split(r"(?<!\\)\|", line.strip()[1:-1])
    return [p.strip().replace("\\|", "|") for p in parts]


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.lower())
    return text.replace(" ", "-")


def main(argv: list[str] | None = None) -> int:
    """``python -m pytest_aisp.reporters.rules DOCS``: regenerate ``rules.json`` from the docs' tables."""
    args = sys.argv[1:] if argv is None else argv
    docs = Path(args[0] if args else "docs")
    CATALOGUE.write_text(catalogue_json(parse_docs(docs).values()), encoding="utf-8")
    print(f"wrote {CATALOGUE} from {docs}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
