"""The dashboard web app (Starlette + Jinja templates): overview, findings, trends, triage, configuration.

Pages render on the server and read without JavaScript. One dashboard serves many projects (repositories):
every page filters by project, each project has its own gate and its own triage. Writes (triage,
configuration) need the token in ``AISP_DASHBOARD_TOKEN`` or an identity from a trusted reverse proxy (see
``access.py``); without either the dashboard is read-only. Behind a proxy that serves it under a path prefix
(``/aisp/``), ``root_path`` makes every link and redirect carry the prefix, whether or not the proxy strips it.
"""

from __future__ import annotations

import datetime as dt
import re
import sys
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pytest_aisp.baseline import Baseline, BaselineEntry, load_baseline
from pytest_aisp.config import OPTIONS, SettingError, parse_option, read_tool_table
from pytest_aisp.dashboard import settings_form
from pytest_aisp.dashboard.access import Access, parse_proxies
from pytest_aisp.dashboard.charts import Series, line_chart
from pytest_aisp.dashboard.db import HistoryUnavailable
from pytest_aisp.dashboard.metric_catalog import DEFAULT_CATALOG, SECURITY, MetricCatalog
from pytest_aisp.dashboard.store import HistoryStore, TriageDecision, open_store
from pytest_aisp.dashboard.summary import finding_status, new_fingerprints, summarize_runs
from pytest_aisp.findings import AispError, Severity

TEMPLATES = Path(__file__).parent / "templates"
SORT_KEYS = ("severity", "rule", "module", "test", "status", "location")
DEFAULT_TREND_RUNS = 50
MAX_TREND_RUNS = 1000
T = TypeVar("T")


@dataclass(frozen=True)
class DashboardConfig:
    """Where the dashboard reads and writes, and who may write.

    ``baseline_path`` is the baseline triage writes for a single project; with ``baseline_dir`` each project
    gets ``<baseline_dir>/<project>/aisp-baseline.json``. ``trusted_proxies`` (addresses or networks) may set
    ``user_header``; ``root_path`` is the path prefix a reverse proxy serves the dashboard under.
    """

    db_url: str
    baseline_path: Path
    project_root: Path
    token: str | None = None
    baseline_dir: Path | None = None
    trusted_proxies: tuple[Any, ...] = ()  # addresses or networks, as text or ipaddress objects
    user_header: str = "X-Forwarded-User"
    root_path: str = ""
    catalog: MetricCatalog = field(default_factory=lambda: DEFAULT_CATALOG)
    trend_runs: int = DEFAULT_TREND_RUNS


def http_url(url: str | None) -> str:
    """``url`` when it is an http(s) link, else "": build links from CI variables are never trusted blindly
    (``javascript:`` and ``data:`` URLs run code when clicked)."""
    text = (url or "").strip()
    parts = urllib.parse.urlsplit(text)
    if parts.scheme.lower() in ("http", "https") and parts.netloc and not any(ord(c) < 32 for c in text):
        return text
    return ""


def when(created: str) -> str:
    """``2026-11-08T09:00:00+00:00`` -> ``2026-11-08 09:00 UTC`` (other offsets are kept)."""
    try:
        moment = dt.datetime.fromisoformat(created)
    except (TypeError, ValueError):
        return created
    zone = "UTC" if moment.utcoffset() == dt.timedelta(0) else moment.strftime("%z")
    return f"{moment:%Y-%m-%d %H:%M} {zone}".strip()


def normalize_root_path(prefix: str) -> str:
    """``aisp/`` -> ``/aisp``; "" or "/" -> ""."""
    text = "/" + prefix.strip().strip("/")
    if text == "/":
        return ""
    if not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", text):
        raise AispError(f"path prefix {prefix!r} must look like /aisp or /tools/aisp")
    return text


def project_slug(project: str) -> Path:
    """A relative path for a project name (``org/repo`` -> ``org/repo``); nothing can climb out of the folder."""
    segments = [re.sub(r"[^A-Za-z0-9._-]", "_", s) for s in project.split("/") if s.strip()]
    segments = [s if s not in (".", "..") else "_" for s in segments]
    return Path(*segments) if segments else Path("_default")


DEFAULT_BRANCHES = ("main", "master", "trunk", "develop")


def default_branch(heads: dict[str, Any]) -> str:
    """The branch a page shows first: main (or master ...) when there is one, else the most recent."""
    for name in DEFAULT_BRANCHES:
        if name in heads:
            return name
    return max(heads, key=lambda b: heads[b].id) if heads else ""


class PathPrefix:
    """ASGI middleware: serve under ``prefix`` whether the proxy forwards the prefix or strips it."""

    def __init__(self, app: Any, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket") and self.prefix:
            path = scope["path"]
            if not (path == self.prefix or path.startswith(self.prefix + "/")):
                path = self.prefix + path  # the proxy stripped it: put it back, as the ASGI spec has it
            if path == self.prefix:
                path += "/"
            scope = {**scope, "path": path, "root_path": self.prefix}
        await self.app(scope, receive, send)


class _History:
    """The open history, kept across requests; reopened after an error (a restarted server, a replaced file)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._store: HistoryStore | None = None

    def use(self, work: Callable[[HistoryStore], T]) -> T:
        reused = self._store is not None
        try:
            return work(self._open())
        except HistoryUnavailable:
            self.drop()
            if not reused:
                raise
        return work(self._open())  # a connection that went stale between requests: once more, fresh

    def _open(self) -> HistoryStore:
        if self._store is None:
            self._store = open_store(self.url)
        return self._store

    def drop(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


def create_app(config: DashboardConfig) -> Any:
    """The Starlette application for ``config``."""
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, RedirectResponse, Response
    from starlette.routing import Route
    from starlette.templating import Jinja2Templates

    templates = Jinja2Templates(directory=str(TEMPLATES))
    templates.env.filters["http_url"] = http_url
    templates.env.filters["when"] = when
    access = Access(config.token, parse_proxies([str(p) for p in config.trusted_proxies]), config.user_header)
    history = _History(config.db_url)
    root_path = normalize_root_path(config.root_path)
    catalog = config.catalog

    def peer(request: Request) -> str | None:
        return request.client.host if request.client else None

    def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        user = access.proxy_user(peer(request), request.headers)
        context.setdefault("project", None)
        context.setdefault("projects", [])
        context.update(request=request, root=root_path, writable=access.writable, user=user,
                       csrf=access.csrf_for(user) if user else "", token_needed=user is None)
        return templates.TemplateResponse(request, name, context, status_code=status_code)

    def link(path: str, **params: Any) -> str:
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v not in (None, "")})
        return f"{root_path}{path}" + (f"?{query}" if query else "")

    templates.env.globals["link"] = link

    def chosen_project(db: HistoryStore, request: Request) -> tuple[str | None, list[str]]:
        """The project asked for (None: all), and every project; one project is chosen by itself."""
        projects = db.projects()
        asked = request.query_params.get("project")
        if asked is not None and asked in projects:
            return asked, projects
        if asked is not None and asked != "":
            raise HTTPException(404, f"no runs of project {asked!r} are recorded")
        return (projects[0] if len(projects) == 1 else None), projects

    async def overview(request: Request) -> Response:
        def read(db: HistoryStore) -> dict[str, Any]:
            project, projects = chosen_project(db, request)
            summaries = summarize_runs(db, db.heads(project), catalog=catalog)
            return {"project": project, "projects": projects, "summaries": summaries}

        data = history.use(read)
        return render(request, "overview.html", severities=[s.value for s in sorted(Severity, reverse=True)],
                      **data)

    async def findings(request: Request) -> Response:
        params = request.query_params

        def read(db: HistoryStore) -> dict[str, Any]:
            project, projects = chosen_project(db, request)
            if project is None and projects:
                project = projects[0]
            heads = {run.info.branch: run for run in db.heads(project)} if projects else {}
            branch = params.get("branch") or default_branch(heads)
            rows: list[dict[str, Any]] = []
            if branch in heads:
                triaged = db.triage(project)
                stored = db.findings(heads[branch].id)
                new = new_fingerprints(db, heads[branch], stored)
                for f in stored:
                    rows.append({
                        "fingerprint": f.fingerprint, "severity": f.finding.severity.value,
                        "rank": f.finding.severity.rank, "rule": f.finding.rule_id, "module": f.finding.module,
                        "test": f.test, "location": f.finding.location, "message": f.finding.message,
                        "status": finding_status(f, new, triaged),
                    })
            return {"project": project, "projects": projects, "branch": branch, "branches": list(heads),
                    "rows": rows}

        data = history.use(read)
        rows = data.pop("rows")
        for key in ("module", "severity", "status", "rule"):
            if params.get(key):
                rows = [r for r in rows if r[key] == params[key]]
        sort = params.get("sort", "severity")
        if sort not in SORT_KEYS:
            sort = "severity"
        rows.sort(key=lambda r: (-r["rank"], r["rule"]) if sort == "severity" else (r[sort], -r["rank"]))
        return render(request, "findings.html", rows=rows, params=params, sort=sort, sort_keys=SORT_KEYS, **data)

    async def finding_detail(request: Request) -> Response:
        fp = request.path_params["fingerprint"]

        def read(db: HistoryStore) -> dict[str, Any]:
            project, projects = chosen_project(db, request)
            appearances = db.finding_history(fp, project)
            if not appearances:
                raise HTTPException(404, f"no finding with fingerprint {fp}"
                                         + (f" in project {project}" if project is not None else ""))
            project = appearances[-1][0].info.project
            return {"project": project, "projects": projects, "appearances": appearances,
                    "latest": appearances[-1][1], "triage": db.triage(project).get(fp),
                    "triage_log": db.triage_log(fp, project)}

        data = history.use(read)
        return render(request, "finding.html", fp=fp, **data)

    async def trends(request: Request) -> Response:
        params = request.query_params
        try:
            last = min(MAX_TREND_RUNS, max(2, int(params.get("runs") or config.trend_runs)))
        except ValueError:
            raise HTTPException(400, f"runs must be a number of runs, got {params.get('runs')!r}") from None

        def read(db: HistoryStore) -> dict[str, Any]:
            project, projects = chosen_project(db, request)
            if project is None and projects:
                project = projects[0]
            heads = {run.info.branch: run for run in db.heads(project)} if projects else {}
            branches = sorted(heads)
            branch = params.get("branch") or default_branch(heads)
            runs = db.runs(branch, project=project, last=last) if branch else []
            series = db.metric_series(branch, project, last=last) if branch else {}
            return {"project": project, "projects": projects, "branch": branch, "branches": branches, "runs": runs,
                    "series": series}

        data = history.use(read)
        runs, series = data.pop("runs"), data.pop("series")
        labels = {run.id: f"#{run.id}" for run in runs}
        by_metric: dict[str, dict[str, list[tuple[int, float]]]] = {}
        for (test, name), points in series.items():
            by_metric.setdefault(name, {})[test] = points
        charts, others = [], []
        for name in sorted(by_metric, key=lambda n: (catalog.spec(n).label.lower(), n)):
            spec = catalog.spec(name)
            tests = by_metric[name]
            if spec.kind != SECURITY:
                for test, points in sorted(tests.items()):
                    others.append({"name": name, "spec": spec, "test": test, "value": points[-1][1],
                                   "run": points[-1][0]})
                continue
            short = [t.rsplit("::", 1)[-1] for t in tests]
            lines = [Series(s if short.count(s) == 1 else t, t, pts)
                     for s, (t, pts) in zip(short, sorted(tests.items()))]
            charts.append({"name": name, "spec": spec,
                           "html": line_chart(spec.label, lines, lo=spec.lo, hi=spec.hi, run_labels=labels)})
        counts = [Series("findings", "findings per run", [(r.id, float(r.finding_count)) for r in runs])]
        findings_chart = line_chart("findings per run", counts, lo=0.0, hi=None, run_labels=labels)
        return render(request, "trends.html", charts=charts, others=others, findings_chart=findings_chart,
                      last=last, run_count=len(runs), **data)

    def baseline_path_for(project: str) -> Path:
        if config.baseline_dir is not None:
            return config.baseline_dir / project_slug(project) / "aisp-baseline.json"
        return config.baseline_path

    async def triage(request: Request) -> Response:
        form = await request.form()
        try:
            decided_by = access.authorize(peer(request), request.headers, form)
        except PermissionError as exc:
            raise HTTPException(403, str(exc)) from None
        fp = request.path_params["fingerprint"]
        project = str(form.get("project", ""))
        status = str(form.get("status", "accepted"))
        reason = str(form.get("reason", "")).strip()
        expires = str(form.get("expires", "")).strip() or None
        owner = str(form.get("owner", "")).strip()
        if not reason:
            return render(request, "error.html", status_code=400, message="a triage decision needs a reason")
        try:
            expiry = dt.date.fromisoformat(expires) if expires else None
        except ValueError:
            return render(request, "error.html", status_code=400,
                          message=f"expiry must be a date like 2027-03-31, got {expires!r}")

        def write(db: HistoryStore) -> None:
            appearances = db.finding_history(fp, project, last=1)
            if not appearances:
                raise HTTPException(404, f"no finding with fingerprint {fp} in project {project!r}")
            latest = appearances[-1][1]
            test = latest.test or "*"
            accept_in_baseline(baseline_path_for(project), test, latest.finding.rule_id, latest.finding.location,
                               reason, owner, expiry, status)
            db.set_triage(fp, status, reason, owner, expires, project=project, decided_by=decided_by,
                          rule_id=latest.finding.rule_id, test=test, location=latest.finding.location)

        try:
            history.use(write)
        except AispError as exc:
            if isinstance(exc, HistoryUnavailable):
                raise
            return render(request, "error.html", status_code=400, message=str(exc))
        return RedirectResponse(link(f"/findings/{fp}", project=project), status_code=303)

    async def baseline_export(request: Request) -> Response:
        def read(db: HistoryStore) -> dict[str, TriageDecision]:
            project, _ = chosen_project(db, request)
            if project is None:
                raise HTTPException(400, "name the project: /baseline.json?project=owner/name")
            return db.triage(project)

        decisions = history.use(read)
        entries = tuple(baseline_entry(d) for _, d in sorted(decisions.items()))
        return Response(Baseline(entries).to_json(), media_type="application/json",
                        headers={"Content-Disposition": "attachment; filename=aisp-baseline.json"})

    async def configuration(request: Request) -> Response:
        current = read_tool_table(config.project_root)
        return render(request, "config.html", options=OPTIONS, current=current, errors={},
                      extra=settings_form.module_sections_text(current), saved=None)

    async def save_configuration(request: Request) -> Response:
        form = await request.form()
        try:
            access.authorize(peer(request), request.headers, form)
        except PermissionError as exc:
            raise HTTPException(403, str(exc)) from None
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
        if isinstance(exc, HistoryUnavailable):
            return render(request, "error.html", status_code=503, message=str(exc), unavailable=True)
        return render(request, "error.html", status_code=500, message=str(exc))

    async def internal_error(request: Request, exc: Exception) -> Response:
        print(f"aisp dashboard: internal error on {request.url.path}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return render(request, "error.html", status_code=500,
                      message=f"internal error ({type(exc).__name__}); the server log has the details")

    routes = [
        Route("/", overview),
        Route("/findings", findings),
        Route("/findings/{fingerprint}", finding_detail),
        Route("/findings/{fingerprint}/triage", triage, methods=["POST"]),
        Route("/trends", trends),
        Route("/baseline.json", baseline_export),
        Route("/config", configuration),
        Route("/config", save_configuration, methods=["POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error, AispError: aisp_error,
                                                       Exception: internal_error})
    return PathPrefix(app, root_path) if root_path else app


def baseline_entry(decision: TriageDecision) -> BaselineEntry:
    """The baseline entry a triage decision stands for."""
    expiry = dt.date.fromisoformat(decision.expires) if decision.expires else None
    reason = f"false positive: {decision.reason}" if decision.status == "false_positive" else decision.reason
    return BaselineEntry(decision.rule_id, decision.test or "*", decision.location, reason, expiry, decision.owner)


def accept_in_baseline(
    path: Path, test: str, rule_id: str, location: str, reason: str, owner: str, expires: dt.date | str | None,
    status: str,
) -> None:
    """Add (or replace) the baseline entry for one finding in the file the plugin reads."""
    baseline = load_baseline(path) if path.exists() else Baseline()
    if isinstance(expires, str):
        try:
            expires = dt.date.fromisoformat(expires) if expires else None
        except ValueError:
            raise AispError(f"expiry must be a date like 2027-03-31, got {expires!r}") from None
    text = f"false positive: {reason}" if status == "false_positive" else reason
    entry = BaselineEntry(rule_id, test, location, text, expires, owner)
    kept = tuple(e for e in baseline.entries if (e.rule_id, e.test, e.location) != (rule_id, test, location))
    try:
        Baseline((*kept, entry)).write(path)
    except OSError as exc:
        raise AispError(f"cannot write the baseline {path}: {exc.strerror or exc}") from None
