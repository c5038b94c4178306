"""``--aisp-html``: a static findings report that a locked-down Jenkins can show.

Jenkins serves archived files and ``publishHTML`` reports under a Content-Security-Policy of
``sandbox; default-src 'none'; img-src 'self'; style-src 'self';``: no script, no inline style, no
``data:`` pictures. pytest-html needs all three. This report needs none: one HTML file, its CSS in a
file beside it (``NAME.css``) and its pictures as files in a folder beside it (``NAME-files/``). It
shows the same findings, with the same stable locations, as SARIF and JUnit.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pytest_aisp.findings import AispError, Severity, escape_control
from pytest_aisp.recorder import Attachment
from pytest_aisp.reporters.entries import ReportedFinding, fingerprint

CSS_NAME = "aisp-report.css"
PICTURE_TYPES = {"image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif", "image/webp": ".webp",
                 "image/svg+xml": ".svg"}


@dataclass(frozen=True)
class HtmlReport:
    """What the page shows."""

    entries: Sequence[ReportedFinding]
    outcomes: Mapping[str, str]
    metrics: Mapping[str, Mapping[str, float]]
    attachments: Mapping[str, Sequence[Attachment]]
    title: str = "pytest-aisp findings"
    subtitle: str = ""


def write_html_report(path: Path, report: HtmlReport) -> list[Path]:
    """Write the page to ``path``, ``path.css`` and ``path-files/`` beside it; return the files written."""
    path = Path(path)
    if path.is_dir():
        raise AispError(f"cannot write the HTML report to {path}: it is a directory; give a file name such as "
                        f"{path / 'aisp-report.html'}")
    css = path.with_suffix(".css")
    folder = path.with_name(path.stem + "-files")
    written: list[Path] = []
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        pictures = _write_pictures(folder, report.attachments)
        written += [p for refs in pictures.values() for p, _, _ in refs]
        css.write_text(resources.files("pytest_aisp.reporters").joinpath(CSS_NAME).read_text(encoding="utf-8"),
                       encoding="utf-8")
        path.write_text(render_html(report, css_href=css.name, pictures=pictures, base=path.parent),
                        encoding="utf-8")
    except OSError as exc:
        raise AispError(f"cannot write the HTML report to {path}: {exc.strerror or exc}") from None
    return [path, css, *written]


def _write_pictures(folder: Path, attachments: Mapping[str, Sequence[Attachment]]
                    ) -> dict[str, list[tuple[Path, str, str]]]:
    """Each attachment as a file: {test: [(file, title, mime)]}; text attachments stay inline."""
    written: dict[str, list[tuple[Path, str, str]]] = {}
    number = 0
    for test, items in attachments.items():
        for item in items:
            number += 1
            suffix = PICTURE_TYPES.get(item.mime, ".txt" if item.mime.startswith("text/") else ".bin")
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / f"{number:04d}-{_slug(item.title)}{suffix}"
            target.write_bytes(item.content)
            written.setdefault(test, []).append((target, item.title, item.mime))
    return written


def render_html(report: HtmlReport, *, css_href: str = CSS_NAME,
                pictures: Mapping[str, Sequence[tuple[Path, str, str]]] | None = None, base: Path | None = None) -> str:
    """The page's HTML: no script, no inline style, pictures referenced by relative URL."""
    pictures = pictures or {}
    entries = list(report.entries)
    open_entries = [e for e in entries if not e.accepted and not e.is_expected]
    accepted = [e for e in entries if e.accepted]
    expected = [e for e in entries if e.is_expected and not e.accepted]
    tests = sorted(set(report.outcomes) | {e.nodeid or "" for e in entries} | set(report.metrics) | set(pictures))
    anchors = {test: f"t{i}" for i, test in enumerate(tests)}
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(report.title)}</title>",
        f'<link rel="stylesheet" href="{_e(css_href)}">',
        "</head>",
        "<body>",
        f"<header><h1>{_e(report.title)}</h1>",
        f'<p class="meta">{_e(report.subtitle)}</p></header>' if report.subtitle else "</header>",
        "<main>",
        _summary(open_entries, accepted, expected, report.outcomes),
        _section("open", "Findings", "findings", open_entries, anchors,
                 "No open findings: nothing failed the security checks."),
        _section("expected", "Expected findings (xfailed and negative tests)", "expected-findings", expected,
                 anchors, "No expected findings."),
        _section("accepted", "Accepted by the baseline", "accepted-findings", accepted, anchors,
                 "No findings accepted by the baseline."),
        _tests(tests, anchors, entries, report, pictures, base),
        "</main>",
        "</body>",
        "</html>",
    ]
    return "\n".join(p for p in parts if p) + "\n"


def _summary(open_entries: Sequence[ReportedFinding], accepted: Sequence[ReportedFinding],
             expected: Sequence[ReportedFinding], outcomes: Mapping[str, str]) -> str:
    counts = Counter(e.finding.severity for e in open_entries)
    cells = "".join(f'<td class="sev sev-{s.value}">{counts[s]} {s.value}</td>' for s in sorted(Severity, reverse=True))
    outcome_counts = Counter(outcomes.values())
    tested = ", ".join(f"{n} {name}" for name, n in sorted(outcome_counts.items())) or "no tests"
    return (
        '<section id="summary"><h2>Summary</h2>'
        f'<table class="counts"><tbody><tr>{cells}</tr></tbody></table>'
        f"<p>{len(open_entries)} open findings, {len(expected)} expected (xfailed or negative tests), "
        f"{len(accepted)} accepted by the baseline. Tests: {_e(tested)}.</p></section>"
    )


def _section(section_id: str, title: str, table_id: str, entries: Sequence[ReportedFinding],
             anchors: Mapping[str, str], empty: str) -> str:
    if not entries:
        return f'<section id="{section_id}"><h2>{_e(title)}</h2><p class="none">{_e(empty)}</p></section>'
    rows = []
    ordered = sorted(entries, key=lambda e: (-e.finding.severity.rank, e.finding.rule_id, e.nodeid or ""))
    for entry in ordered:
        f = entry.finding
        test = entry.nodeid or ""
        test_cell = f'<a href="#{anchors[test]}">{_e(test)}</a>' if test in anchors and test else _e(test or "-")
        status = f' <span class="tag">{_e(entry.expected)}</span>' if entry.is_expected else ""
        rows.append(
            f'<tr><td class="sev sev-{f.severity.value}">{f.severity.value}</td>'
            f'<td class="rule">{_e(f.rule_id)}{status}</td><td class="test">{test_cell}</td>'
            f'<td class="loc">{_e(f.location or "-")}</td><td class="msg">{_e(f.message)}</td>'
            f'<td class="fp"><code>{_e(fingerprint(entry)[:12])}</code></td></tr>'
        )
    return (
        f'<section id="{section_id}"><h2>{_e(title)} ({len(entries)})</h2>'
        f'<table id="{table_id}" class="findings"><thead><tr><th>severity</th><th>rule</th><th>test</th>'
        "<th>location</th><th>message</th><th>fingerprint</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )


def _tests(tests: Sequence[str], anchors: Mapping[str, str], entries: Sequence[ReportedFinding],
           report: HtmlReport, pictures: Mapping[str, Sequence[tuple[Path, str, str]]], base: Path | None) -> str:
    shown = [t for t in tests if t and (report.metrics.get(t) or pictures.get(t)
                                        or any(e.nodeid == t for e in entries))]
    if not shown:
        return ""
    articles = []
    for test in shown:
        outcome = report.outcomes.get(test, "")
        head = (f'<h3 id="{anchors[test]}"><code>{_e(test)}</code> '
                f'<span class="outcome outcome-{_slug(outcome) or "unknown"}">{_e(outcome or "-")}</span></h3>')
        body = []
        metrics = report.metrics.get(test) or {}
        if metrics:
            items = "".join(f"<dt>{_e(name)}</dt><dd>{value:.6g}</dd>" for name, value in sorted(metrics.items()))
            body.append(f'<dl class="metrics">{items}</dl>')
        for file, title, mime in pictures.get(test, ()):
            href = file.relative_to(base).as_posix() if base else file.name
            if mime in PICTURE_TYPES:
                body.append(f'<figure><img src="{_e(href)}" alt="{_e(title)}"><figcaption>{_e(title)}</figcaption>'
                            "</figure>")
            else:
                body.append(f'<p class="attachment"><a href="{_e(href)}">{_e(title)}</a></p>')
        articles.append(f'<article class="test">{head}{"".join(body)}</article>')
    return f'<section id="tests"><h2>Tests</h2>{"".join(articles)}</section>'


def _e(text: str) -> str:
    return html.escape(escape_control(str(text)), quote=True)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40]
