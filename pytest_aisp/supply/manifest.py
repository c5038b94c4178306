"""Artifact manifests: what files a directory held when it was built, by path, kind, size and digest.

A manifest is a JSON file (see ``docs/supply.md``). :func:`create_manifest` walks a directory
without following symbolic links and hashes every file in parallel; :func:`load_manifest` reads one
back and rejects anything that could make a verifier read outside its root.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import functools
import json
import os
import re
import secrets
import stat
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pytest_aisp.findings import AispError
from pytest_aisp.supply.hashing import check_algorithm, digest_bytes, digest_files

FORMAT = "aisp-manifest"
SCHEMA_VERSION = 1
DEFAULT_NAME = "aisp-manifest.json"
SIGNATURE_SUFFIX = ".sig"
KINDS: tuple[str, ...] = ("model", "dataset", "script", "config", "pipeline", "other")
ENTRY_TYPES: tuple[str, ...] = ("file", "symlink")
# Never part of an artifact: version-control internals and caches that tools rewrite on every run.
DEFAULT_IGNORES: tuple[str, ...] = (".git/", "__pycache__/", ".pytest_cache/")
_HEX = re.compile(r"^[0-9a-f]{64}$")
_REQUIREMENTS = re.compile(r"^requirements.*\.(txt|in)$").match

MODEL_SUFFIXES = frozenset(
    {
        ".pt",
        ".pth",
        ".bin",
        ".safetensors",
        ".onnx",
        ".h5",
        ".hdf5",
        ".keras",
        ".pkl",
        ".pickle",
        ".joblib",
        ".gguf",
        ".ggml",
        ".ckpt",
        ".pb",
        ".tflite",
        ".mlmodel",
        ".msgpack",
        ".mar",
        ".llamafile",
    }
)
DATASET_SUFFIXES = frozenset(
    {
        ".csv",
        ".tsv",
        ".parquet",
        ".jsonl",
        ".npy",
        ".npz",
        ".arrow",
        ".feather",
        ".tfrecord",
        ".avro",
        ".orc",
        ".wav",
        ".flac",
        ".jpg",
        ".jpeg",
        ".png",
        ".txt.gz",
        ".zarr",
    }
)
SCRIPT_SUFFIXES = frozenset({".py", ".sh", ".bash", ".ipynb", ".r", ".jl", ".ps1", ".bat"})
CONFIG_SUFFIXES = frozenset({".json", ".yaml", ".yml", ".toml", ".ini", ".cfg", ".conf", ".lock"})
PIPELINE_GLOBS: tuple[str, ...] = (
    "Jenkinsfile",
    "*/Jenkinsfile",
    "Jenkinsfile.*",
    ".github/workflows/*",
    ".gitlab-ci.yml",
    ".circleci/*",
    "azure-pipelines.yml",
    ".buildkite/*",
    "bitbucket-pipelines.yml",
    "tox.ini",
    ".ci/*",
    "Makefile",
    "dvc.yaml",
    "dvc.lock",
)
PIPELINE_DIRS: tuple[str, ...] = (".github/workflows/", ".circleci/", ".buildkite/", ".ci/")
PIPELINE_NAMES = frozenset(g for g in PIPELINE_GLOBS if "/" not in g and "*" not in g)
CONFIG_NAMES = frozenset(
    {
        "requirements.txt",
        "pyproject.toml",
        "setup.cfg",
        "setup.py",
        "poetry.lock",
        "uv.lock",
        "Pipfile",
        "Pipfile.lock",
        "Dockerfile",
        "environment.yml",
        "conda-lock.yml",
    }
)


class ManifestError(AispError):
    """The manifest is malformed or unsafe; nothing was verified (``aisp manifest verify`` exits 2)."""


@dataclass(frozen=True)
class ManifestEntry:
    """One recorded file: POSIX path relative to the root, its kind, size and hex digest.

    ``size`` is None only for entries read from formats that do not record sizes (model-signing
    bundles). A ``symlink`` entry records its ``target``; its digest is over the target text.
    ``scan`` holds the static-analysis verdict when the manifest was made with ``--scan``.
    """

    path: str
    kind: str
    size: int | None
    digest: str
    type: str = "file"
    target: str | None = None
    scan: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "path": self.path,
            "kind": self.kind,
            "type": self.type,
            "size": self.size,
            "digest": self.digest,
        }
        if self.target is not None:
            data["target"] = self.target
        if self.scan is not None:
            data["scan"] = dict(self.scan)
        return data


@dataclass(frozen=True)
class Manifest:
    """A whole manifest: the algorithm, the entries sorted by path, and how it was made."""

    algorithm: str
    entries: tuple[ManifestEntry, ...]
    root: str = "."
    ignore: tuple[str, ...] = DEFAULT_IGNORES
    allow_symlinks: bool = False
    created: str = ""
    tool: Mapping[str, str] = field(default_factory=dict)
    provenance: Mapping[str, Any] = field(default_factory=dict)
    root_digest: str = ""
    source: str = FORMAT
    # The directory the entries describe, when known (made here or loaded from a file): not written;
    # save_manifest derives ``root`` from it, relative to wherever the manifest is saved.
    root_path: Path | None = field(default=None, compare=False, repr=False)

    def by_path(self) -> dict[str, ManifestEntry]:
        return {e.path: e for e in self.entries}

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "schema_version": SCHEMA_VERSION,
            "algorithm": self.algorithm,
            "tool": dict(self.tool),
            "created": self.created,
            "root": self.root,
            "allow_symlinks": self.allow_symlinks,
            "ignore": list(self.ignore),
            "root_digest": self.root_digest or compute_root_digest(self.entries, self.algorithm),
            "entries": [e.to_dict() for e in self.entries],
            "provenance": dict(self.provenance),
        }


@dataclass(frozen=True)
class Node:
    """What the directory walk saw at one path: a regular file, a symlink or something else."""

    path: str
    type: str  # "file" | "symlink" | "other"
    size: int
    target: str | None = None


# --- paths and patterns ---------------------------------------------------------------------


def check_entry_path(path: Any) -> str:
    """Return ``path`` if it is a safe, normalised, relative POSIX path; raise ``ManifestError``."""
    if not isinstance(path, str) or not path:
        raise ManifestError(f"entry path {path!r} is not a non-empty string")
    if "\x00" in path:
        raise ManifestError(f"entry path {path!r} contains a NUL byte")
    if "\\" in path:
        raise ManifestError(f"entry path {path!r} contains a backslash; manifests use POSIX paths")
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        raise ManifestError(f"entry path {path!r} is absolute; entries must be relative to the root")
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ManifestError(f"entry path {path!r} is not normalised or leaves the root (., .., //)")
    return path


@functools.lru_cache(maxsize=1024)
def _glob(pattern: str) -> Callable[[str], bool]:
    """A compiled matcher for one glob (``*`` crosses ``/``), cached: manifests match thousands of paths."""
    return re.compile(fnmatch.translate(pattern)).match  # type: ignore[return-value]


def matches(path: str, pattern: str, *, is_dir: bool = False) -> bool:
    """Whether relative POSIX ``path`` matches a glob ``pattern``.

    ``dir/`` matches that directory anywhere (and so everything under it); a pattern without a
    slash matches the file name at any depth; a leading ``/`` anchors a pattern at the root; any
    other pattern matches the whole path (``*`` crosses ``/``, ``**/`` may match nothing).
    """
    if pattern.startswith("/"):  # anchored at the root: the whole path, never a name at any depth
        body = pattern[1:]
        if body.endswith("/"):
            return is_dir and bool(_glob(body.rstrip("/"))(path))
        return bool(_glob(body)(path))
    if pattern.endswith("/"):
        if not is_dir:
            return False
        match = _glob(pattern.rstrip("/"))
        return bool(match(path) or match(path.rsplit("/", 1)[-1]))
    if "/" not in pattern:
        return bool(_glob(pattern)(path.rsplit("/", 1)[-1]))
    return bool(
        _glob(pattern)(path)
        or (pattern.startswith("**/") and _glob(pattern[3:])(path))
        or _glob(pattern.replace("/**/", "/"))(path)
    )


def is_ignored(path: str, patterns: Iterable[str], *, is_dir: bool = False) -> bool:
    """Whether any of ``patterns`` matches ``path`` (see :func:`matches`)."""
    return ignore_matcher(tuple(patterns))(path, is_dir)


@functools.lru_cache(maxsize=64)
def ignore_matcher(patterns: tuple[str, ...]) -> Callable[[str, bool], bool]:
    """``is_ignored`` for a fixed pattern list as at most four compiled regexes, so a walk tests
    each path once instead of once per pattern. Same answers as :func:`matches` for each pattern."""
    on_path: dict[bool, list[str]] = {False: [], True: []}  # whole-path regexes, by is_dir
    on_name: dict[bool, list[str]] = {False: [], True: []}  # file-name regexes, by is_dir
    for pattern in patterns:
        if pattern.startswith("/"):
            body = pattern[1:]
            if body.endswith("/"):
                on_path[True].append(fnmatch.translate(body.rstrip("/")))
            else:
                for is_dir in (False, True):
                    on_path[is_dir].append(fnmatch.translate(body))
        elif pattern.endswith("/"):
            on_path[True].append(fnmatch.translate(pattern.rstrip("/")))
            on_name[True].append(fnmatch.translate(pattern.rstrip("/")))
        elif "/" not in pattern:
            for is_dir in (False, True):
                on_name[is_dir].append(fnmatch.translate(pattern))
        else:
            variants = [pattern, pattern.replace("/**/", "/")]
            if pattern.startswith("**/"):
                variants.append(pattern[3:])
            for is_dir in (False, True):
                on_path[is_dir].extend(fnmatch.translate(v) for v in variants)

    def compiled(parts: list[str]) -> Callable[[str], object] | None:
        return re.compile("|".join(f"(?:{part})" for part in parts)).match if parts else None

    path_match = {d: compiled(on_path[d]) for d in (False, True)}
    name_match = {d: compiled(on_name[d]) for d in (False, True)}

    def ignored(path: str, is_dir: bool = False) -> bool:
        by_path, by_name = path_match[is_dir], name_match[is_dir]
        if by_path is not None and by_path(path):
            return True
        return by_name is not None and bool(by_name(path.rsplit("/", 1)[-1]))

    return ignored


def classify(path: str, kind_globs: Sequence[tuple[str, str]] = ()) -> str:
    """The kind of artifact at ``path``: user globs first, then pipelines, then file suffixes."""
    for kind, glob in kind_globs:
        if matches(path, glob):
            return kind
    name = path.rsplit("/", 1)[-1]
    if (name in PIPELINE_NAMES or name.startswith("Jenkinsfile") or path.startswith(PIPELINE_DIRS)) and any(
        matches(path, g) for g in PIPELINE_GLOBS
    ):
        return "pipeline"
    lower = name.lower()
    if name in CONFIG_NAMES or (lower.startswith("requirements") and _REQUIREMENTS(lower)):
        return "config"
    dot = lower.rfind(".")
    suffix = lower[dot:] if 0 < dot < len(lower) - 1 else ""  # as PurePosixPath.suffix, without its cost
    if suffix in MODEL_SUFFIXES:
        return "model"
    if suffix in DATASET_SUFFIXES or lower.endswith(".txt.gz"):
        return "dataset"
    if suffix in SCRIPT_SUFFIXES:
        return "script"
    if suffix in CONFIG_SUFFIXES:
        return "config"
    top = path.split("/", 1)[0].lower()
    if top in ("data", "dataset", "datasets") and "/" in path:
        return "dataset"
    return "other"


def parse_kind_globs(specs: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """``["model=*.bin", ...]`` as ``(kind, glob)`` pairs; raise ``AispError`` on a bad spec."""
    pairs = []
    for spec in specs:
        kind, sep, glob = spec.partition("=")
        if not sep or kind not in KINDS or not glob:
            raise AispError(f"--kind {spec!r}: use KIND=GLOB with KIND one of {', '.join(KINDS)}")
        pairs.append((kind, glob))
    return tuple(pairs)


# --- the walk ----------------------------------------------------------------------------------


def walk(root: Path, ignore: Sequence[str], *, sizes: bool = True) -> list[Node]:
    """Every non-ignored path under ``root``, sorted, never descending into symbolic links.

    ``sizes=False`` leaves file sizes at -1 and takes each entry's type from the directory listing
    (no ``lstat`` per file) for callers that ``fstat`` every file anyway.
    """
    if not root.is_dir():
        raise AispError(f"{root} is not a directory")
    ignored = ignore_matcher(tuple(ignore))
    nodes: list[Node] = []
    stack = [(root, "")]
    while stack:
        directory, prefix = stack.pop()
        try:
            with os.scandir(directory) as it:
                children = list(it)
        except OSError as exc:
            raise AispError(f"cannot list {directory}: {exc.strerror}") from None
        for child in children:
            rel = f"{prefix}{child.name}"
            try:
                if sizes:
                    mode = child.stat(follow_symlinks=False).st_mode
                    is_dir, is_link, is_file = stat.S_ISDIR(mode), stat.S_ISLNK(mode), stat.S_ISREG(mode)
                else:
                    is_dir = child.is_dir(follow_symlinks=False)
                    is_link = not is_dir and child.is_symlink()
                    is_file = not is_dir and not is_link and child.is_file(follow_symlinks=False)
            except FileNotFoundError:  # removed while listing: absent, reported as missing if recorded
                continue
            if is_dir:
                if not ignored(rel, True):
                    stack.append((Path(child.path), rel + "/"))
                continue
            if ignored(rel, False):
                continue
            if is_link:
                try:
                    target = os.readlink(child.path)
                except OSError:
                    continue
                nodes.append(Node(rel, "symlink", 0, target))
            elif is_file:
                nodes.append(Node(rel, "file", child.stat(follow_symlinks=False).st_size if sizes else -1))
            else:
                nodes.append(Node(rel, "other", 0))
    nodes.sort(key=lambda n: n.path)
    return nodes


def link_stays_inside(root: Path, rel: str, target: str) -> bool:
    """Whether the link at ``rel`` resolves (through any chain of links) to a path inside ``root``."""
    real_root = os.path.realpath(root)
    resolved = os.path.realpath(os.path.join(root, rel))
    return resolved == real_root or resolved.startswith(real_root + os.sep)


# --- digests -----------------------------------------------------------------------------------


def compute_root_digest(entries: Iterable[ManifestEntry], algorithm: str) -> str:
    """One digest over the sorted ``(path, size, digest)`` triples: names the whole artifact set."""
    lines = [f"{e.path}\x00{e.size}\x00{e.digest}\n" for e in sorted(entries, key=lambda e: e.path)]
    return digest_bytes("".join(lines).encode("utf-8"), algorithm)


# --- provenance block --------------------------------------------------------------------------

_CI_VARIABLES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "GITHUB_ACTIONS",
        "github-actions",
        (
            "GITHUB_REPOSITORY",
            "GITHUB_WORKFLOW",
            "GITHUB_RUN_ID",
            "GITHUB_RUN_ATTEMPT",
            "GITHUB_REF",
            "GITHUB_SHA",
            "GITHUB_ACTOR",
            "RUNNER_NAME",
        ),
    ),
    ("JENKINS_URL", "jenkins", ("JOB_NAME", "BUILD_NUMBER", "BUILD_URL", "GIT_COMMIT", "NODE_NAME")),
    (
        "GITLAB_CI",
        "gitlab-ci",
        (
            "CI_PROJECT_PATH",
            "CI_PIPELINE_ID",
            "CI_JOB_ID",
            "CI_COMMIT_SHA",
            "CI_JOB_URL",
            "GITLAB_USER_LOGIN",
        ),
    ),
)


def builder_identity(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Who built the artifacts, from CI variables; ``{"ci": "local", "user": ...}`` outside CI."""
    environ = os.environ if environ is None else environ
    for marker, name, keys in _CI_VARIABLES:
        if environ.get(marker):
            return {"ci": name, **{k: environ[k] for k in keys if environ.get(k)}}
    return {"ci": "local", "user": environ.get("USER") or environ.get("USERNAME") or "unknown"}


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def strip_credentials(url: str) -> str:
    """A remote URL without any user or token in it (``https://tok@host/x`` -> ``https://host/x``)."""
    parts = urlsplit(url)
    if parts.scheme and "@" in parts.netloc:
        return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
    return url


def git_state(root: Path) -> dict[str, Any]:
    """The git commit, remote and dirty flag of the work tree holding ``root`` (empty outside git)."""
    commit = _git(root, "rev-parse", "HEAD")
    if commit is None:
        return {}
    state: dict[str, Any] = {"commit": commit}
    remote = _git(root, "config", "--get", "remote.origin.url")
    if remote:
        state["remote"] = strip_credentials(remote)
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    state["dirty"] = bool(status)
    return state


def provenance_block(root: Path, argv: Sequence[str] | None) -> dict[str, Any]:
    block: dict[str, Any] = {
        "command": list(argv) if argv is not None else list(sys.argv),
        "builder": builder_identity(),
    }
    git = git_state(root)
    if git:
        block["git"] = git
    return block


# --- create, save, load ------------------------------------------------------------------------


def create_manifest(
    root: Path | str,
    *,
    algorithm: str = "sha256",
    kinds: Sequence[tuple[str, str]] | Sequence[str] = (),
    ignore: Sequence[str] = (),
    default_ignores: bool = True,
    allow_symlinks: bool = False,
    scan: bool = False,
    scan_policy: Any = None,
    manifest_path: Path | None = None,
    argv: Sequence[str] | None = None,
    workers: int | None = None,
) -> Manifest:
    """Hash every file under ``root`` into a :class:`Manifest` (not written; see :func:`save_manifest`).

    Symbolic links are refused unless ``allow_symlinks``, and refused always when they resolve outside
    ``root``. ``manifest_path`` (and its signature) are left out when they lie inside ``root``.
    ``scan`` records the static-analysis verdict of each model entry, judged under ``scan_policy``
    (a ``ScanPolicy``, a ``[tool.aisp.scan]``-shaped table or a TOML path; giving one implies
    ``scan``), by default the configured ``[tool.aisp.scan]``.
    """
    root = Path(root)
    check_algorithm(algorithm)
    kind_globs = parse_kind_globs(kinds) if kinds and isinstance(kinds[0], str) else tuple(kinds)  # type: ignore[arg-type]
    patterns = tuple(dict.fromkeys((*DEFAULT_IGNORES, *ignore) if default_ignores else tuple(ignore)))
    walk_ignores = patterns + _own_files(root, manifest_path)
    nodes = walk(root, walk_ignores, sizes=False)  # every file is opened and fstat'ed when hashed
    entries = _entries_from_nodes(root, nodes, algorithm, kind_globs, allow_symlinks, workers)
    if scan or scan_policy is not None:
        entries = scan_models(root, entries, scan_policy)
    rel_root = "."
    if manifest_path is not None:
        rel_root = relative_root(root, manifest_path)
    from pytest_aisp import __version__

    return Manifest(
        algorithm=algorithm,
        entries=tuple(entries),
        root=rel_root,
        root_path=root.resolve(),
        ignore=patterns,
        allow_symlinks=allow_symlinks,
        created=dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        tool={"name": "pytest-aisp", "version": __version__},
        provenance=provenance_block(root, argv),
        root_digest=compute_root_digest(entries, algorithm),
    )


def default_root(manifest_path: Path, manifest: Manifest) -> Path:
    """The directory a manifest describes: its recorded ``root``, relative to the manifest file."""
    return (manifest_path.parent / manifest.root) if manifest.root != "." else manifest_path.parent


def relative_root(root: Path, manifest_path: Path) -> str:
    """``root`` as the manifest at ``manifest_path`` records it: relative to the manifest's directory."""
    return Path(os.path.relpath(root.resolve(), manifest_path.resolve().parent)).as_posix()


def _own_files(root: Path, manifest_path: Path | None) -> tuple[str, ...]:
    """The manifest and its signature, as root-relative paths, when they are inside ``root``."""
    if manifest_path is None:
        return ()
    try:
        rel = manifest_path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return ()
    return ("/" + rel, "/" + rel + SIGNATURE_SUFFIX)


def _entries_from_nodes(
    root: Path,
    nodes: Sequence[Node],
    algorithm: str,
    kind_globs: Sequence[tuple[str, str]],
    allow_symlinks: bool,
    workers: int | None,
) -> list[ManifestEntry]:
    entries: list[ManifestEntry] = []
    files: list[Node] = []
    for node in nodes:
        if node.type == "other":
            raise AispError(
                f"{root / node.path} is not a regular file (a device, socket or pipe); "
                "remove it or --ignore it"
            )
        if node.type == "symlink":
            if not allow_symlinks:
                raise AispError(
                    f"{root / node.path} is a symbolic link; links are refused "
                    "(pass --allow-symlinks to record links that stay inside the root)"
                )
            if not link_stays_inside(root, node.path, node.target or ""):
                raise AispError(
                    f"{root / node.path} links to {node.target!r}, outside {root}; copy the file in instead"
                )
            target = node.target or ""
            entries.append(
                ManifestEntry(
                    node.path,
                    classify(node.path, kind_globs),
                    len(target.encode()),
                    digest_bytes(target.encode(), algorithm),
                    "symlink",
                    target,
                )
            )
        else:
            files.append(node)
    results = digest_files(
        [n.path for n in files], algorithm, workers=workers, root=root
    )
    for node, result in zip(files, results):
        if isinstance(result, AispError):
            raise result
        entries.append(ManifestEntry(node.path, classify(node.path, kind_globs), result.size, result.digest))
    entries.sort(key=lambda e: e.path)
    return entries


def scan_models(root: Path, entries: Sequence[ManifestEntry], policy: Any = None) -> list[ManifestEntry]:
    """Record the static-analysis verdict of every model entry under ``policy`` (default: the
    configured ``[tool.aisp.scan]``, as ``aisp scan`` applies it)."""
    from pytest_aisp.supply.settings import resolve_scan_policy

    the_policy = resolve_scan_policy(policy)
    return [
        replace(entry, scan=scan_verdict(root / entry.path, the_policy))
        if entry.kind == "model" and entry.type == "file"
        else entry
        for entry in entries
    ]


def scan_verdict(path: Path, policy: Any) -> dict[str, Any]:
    """The scan verdict a manifest records for one model: ok, the rule ids found, the worst severity,
    and the fingerprint and source of the policy it was judged under."""
    from pytest_aisp.recorder import recording
    from pytest_aisp.scan import scan_artifact
    from pytest_aisp.supply.settings import policy_fingerprint

    # The scan's own findings stay out of the running test: the manifest check reports the verdict.
    with recording("aisp-supply-scan"):
        result = scan_artifact(path, policy=policy)
    worst = max((f.severity for f in result.findings), default=None)
    return {
        "ok": bool(result.ok),
        "findings": sorted({f.rule_id for f in result.findings}),
        "max_severity": worst.value if worst else None,
        "policy": policy_fingerprint(policy),
        "policy_source": str(policy.source),
    }


def dumps_manifest(manifest: Manifest) -> str:
    """The manifest as the JSON text that is written (and signed)."""
    return json.dumps(manifest.to_dict(), indent=2, sort_keys=False) + "\n"


def save_manifest(manifest: Manifest, path: Path | str) -> Path:
    """Write ``manifest`` to ``path`` (atomically: a reader never sees half a manifest).

    ``root`` is recorded relative to ``path``, so a manifest made with ``create_manifest(dir)`` and
    saved anywhere still finds ``dir``. When the manifest file (or its signature) lies inside the
    root, its own entry is left out, as ``aisp manifest create`` does.
    """
    path = Path(path)
    if manifest.root_path is not None:
        own = {p.lstrip("/") for p in _own_files(manifest.root_path, path)}
        entries = tuple(e for e in manifest.entries if e.path not in own)
        manifest = replace(
            manifest,
            root=relative_root(manifest.root_path, path),
            entries=entries,
            root_digest=compute_root_digest(entries, manifest.algorithm),
        )
    return write_atomic(path, dumps_manifest(manifest).encode("utf-8"))


def write_atomic(path: Path | str, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a new temporary file beside it, renamed over ``path``.

    A reader never sees half a file; a failed write leaves neither a partial file nor the temporary
    one, and raises ``AispError`` saying what to fix. The temporary file is created exclusively
    (never through a link planted at its name).
    """
    path = Path(path)
    if path.is_dir():
        raise AispError(f"{path} is a directory; give a file path to write")
    if not path.parent.is_dir():
        raise AispError(f"cannot write {path}: directory {path.parent} does not exist")
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666)
    except OSError as exc:
        raise AispError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise AispError(f"cannot write {path}: {exc.strerror or exc}") from None
        raise
    return path


def load_manifest(path: Path | str) -> Manifest:
    """Read and check a manifest; raise ``ManifestError`` saying what is wrong with it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AispError(
            f"manifest {path} does not exist; create it with `aisp manifest create DIR -o {path}`"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"manifest {path} cannot be read: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"manifest {path} is not JSON: {exc}") from None
    try:
        manifest = manifest_from_dict(data)
    except ManifestError as exc:
        raise ManifestError(f"manifest {path} is malformed: {exc}") from None
    return replace(manifest, root_path=default_root(path, manifest).resolve())


def manifest_from_dict(data: Any) -> Manifest:
    """Build a :class:`Manifest` from parsed JSON, checking every field and every entry path."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ManifestError(f'not an {FORMAT} document (no "format": "{FORMAT}")')
    if data.get("schema_version") != SCHEMA_VERSION:
        raise ManifestError(f"schema_version {data.get('schema_version')!r} is not {SCHEMA_VERSION}")
    algorithm = data.get("algorithm")
    try:
        check_algorithm(str(algorithm))
    except AispError as exc:
        raise ManifestError(str(exc)) from None
    root = data.get("root", ".")
    if not isinstance(root, str) or "\x00" in root or os.path.isabs(root) or not root:
        raise ManifestError(f"root {root!r} must be a relative path")
    ignore = data.get("ignore", [])
    if not isinstance(ignore, list) or not all(isinstance(p, str) for p in ignore):
        raise ManifestError("ignore must be a list of glob strings")
    raw_entries = data.get("entries")
    if not isinstance(raw_entries, list):
        raise ManifestError("entries must be a list")
    entries = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_entries):
        entry = _entry_from_dict(raw, index)
        if entry.path in seen:
            raise ManifestError(f"entry {index}: path {entry.path!r} appears twice")
        seen.add(entry.path)
        entries.append(entry)
    entries.sort(key=lambda e: e.path)
    recorded = data.get("root_digest")
    actual = compute_root_digest(entries, str(algorithm))
    if recorded != actual:
        raise ManifestError(
            f"root_digest {recorded!r} does not match the entries ({actual}): "
            "the entries were edited after the manifest was made; recreate it"
        )
    return Manifest(
        algorithm=str(algorithm),
        entries=tuple(entries),
        root=root,
        ignore=tuple(ignore),
        allow_symlinks=bool(data.get("allow_symlinks", False)),
        created=str(data.get("created", "")),
        tool=dict(data.get("tool") or {}),
        provenance=dict(data.get("provenance") or {}),
        root_digest=actual,
    )


def _entry_from_dict(raw: Any, index: int) -> ManifestEntry:
    if not isinstance(raw, dict):
        raise ManifestError(f"entry {index} is not an object")
    try:
        path = check_entry_path(raw.get("path"))
    except ManifestError as exc:
        raise ManifestError(f"entry {index}: {exc}") from None
    kind = raw.get("kind", "other")
    if kind not in KINDS:
        raise ManifestError(f"entry {index} ({path}): kind {kind!r} is not one of {', '.join(KINDS)}")
    entry_type = raw.get("type", "file")
    if entry_type not in ENTRY_TYPES:
        raise ManifestError(
            f"entry {index} ({path}): type {entry_type!r} is not one of {', '.join(ENTRY_TYPES)}"
        )
    size = raw.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestError(f"entry {index} ({path}): size {size!r} is not a non-negative integer")
    digest = raw.get("digest")
    if not isinstance(digest, str) or not _HEX.match(digest):
        raise ManifestError(f"entry {index} ({path}): digest must be 64 lower-case hex digits")
    target = raw.get("target")
    if entry_type == "symlink" and (not isinstance(target, str) or "\x00" in target):
        raise ManifestError(f"entry {index} ({path}): a symlink entry needs its target")
    scan = raw.get("scan")
    return ManifestEntry(
        path,
        kind,
        size,
        digest,
        entry_type,
        target if entry_type == "symlink" else None,
        scan if isinstance(scan, dict) else None,
    )
