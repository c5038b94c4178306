"""The dashboard web app (Starlette + Jinja templates): overview, findings, trends, triage, configuration.

Pages render on the server and read without JavaScript. Writes (triage, configuration) need the token in
``AISP_DASHBOARD_TOKEN``; without one the dashboard is read-only.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_aisp.baseline import Baseline, BaselineEntry, load_baseline
from pytest_aisp.config import OPTIONS, SettingError, parse_option, read_tool_table
from pytest_aisp.dashboard import settings_form
from pytest_aisp.dashboard.charts import line_chart
from pytest_aisp.dashboard.store import HistoryStore, open_store
from pytest_aisp.dashboard.summary import finding_status, summarize
from pytest_aisp.findings import AispError, Severity

TEMPLATES = Path(__file__).parent / "templates"
SORT_KEYS = ("severity", "rule", "module", "test", "status", "location")


@dataclass(frozen=True)
class DashboardConfig:
    """Where the dashboard reads and writes."""

    db_url: str
    baseline_path: Path
    project_root: Path
    token: str | None = None


def create_app(config: DashboardConfig) -> Any:
    """The Starlette application for ``config``."""
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, RedirectResponse, Response
    from starlette.routing import Route
    from starlette.templating import Jinja2Templates

    templates = Jinja2Templates(directory=str(TEMPLATES))

    def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        context.update(request=request, writable=config.token is not None)
        return templates.TemplateResponse(request, name, context, status_code=status_code)

    def store() -> HistoryStore:
        return open_store(config.db_url)

    def check_token(form: Any, request: Request) -> None:
        given = str(form.get("token") or request.headers.get("authorization", "").removeprefix("Bearer "))
        if config.token is None:
            raise HTTPException(403, "the dashboard is read-only: start it with AISP_DASHBOARD_TOKEN set")
        if not hmac.compare_digest(given.encode(), config.token.encode()):
            raise HTTPException(403, "wrong or missing token")

    async def overview(request: Request) -> Response:
        with store() as db:
            summaries = [summarize(db, run) for run in db.latest_per_branch().values()]
            triaged = db.triage()
        return render(request, "overview.html", summaries=summaries, triaged=triaged,
                      severities=[s.value for s in sorted(Severity, reverse=True)])

    async def findings(request: Request) -> Response:
        params = request.query_params
        with store() as db:
            runs = db.latest_per_branch()
            branch = params.get("branch") or (next(iter(runs)) if runs else "")
            rows: list[dict[str, Any]] = []
            if branch in runs:
                summary = summarize(db, runs[branch])
                triaged = db.triage()
                for f in summary.findings:
                    rows.append({
                        "fingerprint": f.fingerprint, "severity": f.finding.severity.value,
                        "rank": f.finding.severity.rank, "rule": f.finding.rule_id, "module": f.finding.module,
                        "test": f.test, "location": f.finding.location, "message": f.finding.message,
                        "status": finding_status(f, summary.new, triaged),
                    })
        for key in ("module", "severity", "status", "rule"):
            if params.get(key):
                rows = [r for r in rows if r[key] == params[key]]
        sort = params.get("sort", "severity")
        if sort not in SORT_KEYS:
            sort = "severity"
        rows.sort(key=lambda r: (-r["rank"], r["rule"]) if sort == "severity" else (r[sort], -r["rank"]))
        return render(request, "findings.html", rows=rows, branch=branch, branches=list(runs), params=params,
                      sort=sort, sort_keys=SORT_KEYS)

    async def finding_detail(request: Request) -> Response:
        fp = request.path_params["fingerprint"]
        with store() as db:
            history = db.finding_history(fp)
            triage = db.triage().get(fp)
        if not history:
            raise HTTPException(404, f"no finding with fingerprint {fp}")
        return render(request, "finding.html", fp=fp, history=history, latest=history[-1][1], triage=triage)

    async def trends(request: Request) -> Response:
        with store() as db:
            branches = db.branches()
            branch = request.query_params.get("branch") or (branches[0] if branches else "")
            series = db.metric_series(branch) if branch else {}
            runs = db.runs(branch) if branch else []
            scan_counts = [(run.id, float(len(db.findings(run.id)))) for run in runs]
        by_metric: dict[str, list[tuple[str, list[tuple[int, float]]]]] = {}
        for (test, name), points in sorted(series.items()):
            by_metric.setdefault(name, []).append((test.rsplit("::", 1)[-1], points))
        charts = [(name, line_chart(name, lines)) for name, lines in sorted(by_metric.items())]
        charts.append(("findings per run", line_chart("findings per run", [("findings", scan_counts)])))
        return render(request, "trends.html", charts=charts, branch=branch, branches=branches)

    async def triage(request: Request) -> Response:
        form = await request.form()
        check_token(form, request)
        fp = request.path_params["fingerprint"]
        status = str(form.get("status", "accepted"))
        reason = str(form.get("reason", "")).strip()
        expires = str(form.get("expires", "")).strip() or None
        owner = str(form.get("owner", "")).strip()
        if not reason:
            return render(request, "error.html", status_code=400, message="a triage decision needs a reason")
        with store() as db:
            history = db.finding_history(fp)
            if not history:
                raise HTTPException(404, f"no finding with fingerprint {fp}")
            latest = history[-1][1]
            try:
                db.set_triage(fp, status, reason, owner, expires)
                accept_in_baseline(config.baseline_path, latest.test or "*", latest.finding.rule_id,
                                   latest.finding.location, reason, owner, expires, status)
            except AispError as exc:
                return render(request, "error.html", status_code=400, message=str(exc))
        return RedirectResponse(f"/findings/{fp}", status_code=303)

    async def configuration(request: Request) -> Response:
        current = read_tool_table(config.project_root)
        return render(request, "config.html", options=OPTIONS, current=current, errors={},
                      extra=settings_form.module_sections_text(current), saved=None)

    async def save_configuration(request: Request) -> Response:
        form = await request.form()
        check_token(form, request)
        values = {spec.name: str(form.get(spec.name, "")).strip() for spec in OPTIONS}
        errors: dict[str, str] = {}
        for spec in OPTIONS:
            if values[spec.name]:
                try:
                    parse_option(spec, values[spec.name], "the form")
                except SettingError as exc:
                    errors[spec.name] = str(exc)
        extra_text = str(form.get("extra", ""))
        try:
            sections = settings_form.parse_sections(extra_text)
        except AispError as exc:
            errors["extra"] = str(exc)
            sections = {}
        if errors:
            return render(request, "config.html", status_code=400, options=OPTIONS, current=values, errors=errors,
                          extra=extra_text, saved=None)
        path = settings_form.write_aisp_toml(config.project_root, values, sections)
        return render(request, "config.html", options=OPTIONS, current=values, errors={}, extra=extra_text,
                      saved=str(path))

    async def http_error(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        return render(request, "error.html", status_code=status, message=getattr(exc, "detail", str(exc)))

    async def aisp_error(request: Request, exc: Exception) -> Response:
        return render(request, "error.html", status_code=500, message=str(exc))

    routes = [
        Route("/", overview),
        Route("/findings", findings),
        Route("/findings/{fingerprint}", finding_detail),
        Route("/findings/{fingerprint}/triage", triage, methods=["POST"]),
        Route("/trends", trends),
        Route("/config", configuration),
        Route("/config", save_configuration, methods=["POST"]),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error, AispError: aisp_error})


def accept_in_baseline(
    path: Path, test: str, rule_id: str, location: str, reason: str, owner: str, expires: str | None, status: str
) -> None:
    """Add (or replace) the baseline entry for one finding in the file the plugin reads."""
    import datetime as dt

    baseline = load_baseline(path) if path.exists() else Baseline()
    try:
        expiry = dt.date.fromisoformat(expires) if expires else None
    except ValueError:
        raise AispError(f"expiry must be a date like 2027-03-31, got {expires!r}") from None
    text = f"false positive: {reason}" if status == "false_positive" else reason
    entry = BaselineEntry(rule_id, test, location, text, expiry, owner)
    kept = tuple(e for e in baseline.entries if (e.rule_id, e.test, e.location) != (rule_id, test, location))
    Baseline((*kept, entry)).write(path)
