"""Verify a directory against its manifest: what was modified, removed, added, renamed or retyped.

Sizes are compared first: a file whose size changed is reported without being read. Only files
whose size still matches are hashed (in parallel), plus the few whose size matches another
entry's, to tell a rename or a swap from plain tampering.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_aisp.findings import AispError, Finding, IntegrityFailure, Severity
from pytest_aisp.recorder import record_findings, record_metric
from pytest_aisp.supply.hashing import FileDigest, digest_bytes, digest_files
from pytest_aisp.supply.manifest import (
    DEFAULT_NAME,
    Manifest,
    ManifestEntry,
    Node,
    _own_files,
    default_root,
    link_stays_inside,
    load_manifest,
    scan_verdict,
    walk,
)
from pytest_aisp.supply.modelsig import BUNDLE_NAME, is_model_signing_bundle, read_bundle
from pytest_aisp.supply.settings import missing_key_message, policy_fingerprint, resolve_scan_policy, supply_settings

RULE_MODIFIED = "AISP-SUPPLY-MODIFIED"
RULE_MISSING = "AISP-SUPPLY-MISSING"
RULE_ADDED = "AISP-SUPPLY-ADDED"
RULE_RENAMED = "AISP-SUPPLY-RENAMED"
RULE_TYPE_CHANGED = "AISP-SUPPLY-TYPE-CHANGED"
RULE_SYMLINK = "AISP-SUPPLY-SYMLINK"
RULE_SCAN = "AISP-SUPPLY-SCAN"
SEVERITIES: Mapping[str, Severity] = {
    RULE_MODIFIED: Severity.CRITICAL,
    RULE_MISSING: Severity.HIGH,
    RULE_ADDED: Severity.HIGH,
    RULE_RENAMED: Severity.CRITICAL,
    RULE_TYPE_CHANGED: Severity.CRITICAL,
    RULE_SYMLINK: Severity.CRITICAL,
    RULE_SCAN: Severity.HIGH,
}


@dataclass(frozen=True)
class Change:
    """One difference between the manifest and the directory, as the verify table shows it."""

    change: str  # modified | missing | added | renamed | swapped | type-changed | symlink
    path: str
    detail: str
    rule_id: str
    expected: Mapping[str, Any] = field(default_factory=dict)
    actual: Mapping[str, Any] = field(default_factory=dict)


NOT_AUTHENTICATED = "integrity not authenticated: no signature was checked"


@dataclass(frozen=True)
class IntegrityResult:
    """What verifying a manifest found.

    ``ok`` when nothing changed and no signature finding was made. ``authenticated`` only when the
    manifest's signature verified with the trusted key; a result made with ``allow_unsigned`` and no
    key has ``ok`` without ``authenticated``: the digests matched a manifest anyone could have written.
    """

    manifest_path: Path
    root: Path
    manifest: Manifest
    changes: tuple[Change, ...]
    findings: tuple[Finding, ...]
    metrics: Mapping[str, float]
    signature: str = "not checked"  # "valid" | "invalid" | "not checked"

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def authenticated(self) -> bool:
        """Whether the manifest's signature verified with the trusted public key."""
        return self.signature == "valid"

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for change in self.changes:
            counts[change.change] = counts.get(change.change, 0) + 1
        parts = [f"{n} {name}" for name, n in sorted(counts.items())]
        unsafe = sum(1 for f in self.findings if f.rule_id == RULE_SCAN)
        if unsafe:
            parts.append(f"{unsafe} unsafe model{'s' if unsafe > 1 else ''}")
        if self.signature == "invalid":
            parts.append("signature invalid")
        text = ", ".join(parts) if parts else "intact"
        if self.signature == "not checked":
            text += f" ({NOT_AUTHENTICATED})"
        return text


def _location(root_display: str, path: str) -> str:
    return f"{root_display.rstrip('/')}/{path}" if root_display not in ("", ".") else path


def _finding(change: Change, root_display: str) -> Finding:
    evidence = {"change": change.change, "path": change.path}
    evidence.update({f"expected_{k}": v for k, v in change.expected.items()})
    evidence.update({f"actual_{k}": v for k, v in change.actual.items()})
    return Finding(
        change.rule_id,
        SEVERITIES[change.rule_id],
        change.detail,
        _location(root_display, change.path),
        evidence,
    )


def compare(
    manifest: Manifest,
    root: Path,
    *,
    extra_ignores: Sequence[str] = (),
    workers: int | None = None,
    allow_symlinks: bool | None = None,
) -> tuple[list[Change], dict[str, float]]:
    """Compare ``root`` with ``manifest``; return the changes and the hashing cost."""
    allow = manifest.allow_symlinks if allow_symlinks is None else allow_symlinks
    nodes = {n.path: n for n in walk(root, (*manifest.ignore, *extra_ignores))}
    expected = manifest.by_path()
    algorithm = manifest.algorithm
    changes: list[Change] = []
    missing: list[ManifestEntry] = []
    size_changed: list[tuple[ManifestEntry, Node]] = []
    to_hash: list[tuple[ManifestEntry, Node]] = []

    for path, entry in expected.items():
        node = nodes.get(path)
        if node is None:
            missing.append(entry)
        elif node.type != entry.type:
            changes.append(
                Change(
                    "type-changed",
                    path,
                    f"{path} was a {entry.type}, is now a {_describe(node)}",
                    RULE_TYPE_CHANGED,
                    {"type": entry.type},
                    {"type": node.type, "target": node.target},
                )
            )
        elif node.type == "symlink":
            changes.extend(_symlink_changes(root, entry, node, algorithm))
        elif entry.size is not None and entry.size != node.size:
            size_changed.append((entry, node))
        else:
            to_hash.append((entry, node))

    added = [n for p, n in nodes.items() if p not in expected]
    # Files whose size matches an entry that went missing or changed may be renamed or swapped
    # copies: those are worth hashing; anything else is reported from its size alone.
    missing_sizes = {e.size for e in missing}
    recorded_sizes = {e.size for e in manifest.entries if e.type == "file"}
    probe_added = [
        n for n in added if n.type == "file" and (n.size in missing_sizes or None in missing_sizes)
    ]
    probe_resized = [(e, n) for e, n in size_changed if n.size in recorded_sizes]
    hash_nodes = [n for _, n in to_hash] + [n for _, n in probe_resized] + probe_added
    started = time.perf_counter()
    results = digest_files(
        [n.path for n in hash_nodes],
        algorithm,
        workers=workers,
        root=root,
    )
    seconds = time.perf_counter() - started
    digests: dict[str, FileDigest] = {}
    for node, result in zip(hash_nodes, results):
        if isinstance(result, AispError):
            # Swapped for a link or made unreadable between the walk and the read: fail closed.
            changes.append(
                Change(
                    "type-changed",
                    node.path,
                    f"{node.path} could not be read as a regular file: {result}",
                    RULE_TYPE_CHANGED,
                )
            )
        else:
            digests[node.path] = result

    changed_content: list[tuple[ManifestEntry, Node]] = list(size_changed)
    for entry, node in to_hash:
        got = digests.get(node.path)
        if got is not None and got.digest != entry.digest:
            changed_content.append((entry, node))

    # Renames: a missing entry's content now lives under a new name.
    by_digest_missing = {}
    for entry in missing:
        by_digest_missing.setdefault(entry.digest, []).append(entry)
    still_added = []
    for node in added:
        got = digests.get(node.path)
        candidates = by_digest_missing.get(got.digest, []) if got else []
        if candidates:
            old = candidates.pop(0)
            missing.remove(old)
            changes.append(
                Change(
                    "renamed",
                    node.path,
                    f"{old.path} was renamed to {node.path} (same content, other name)",
                    RULE_RENAMED,
                    {"path": old.path, "digest": old.digest},
                    {"path": node.path},
                )
            )
        else:
            still_added.append(node)

    # Swaps: a changed file now holds exactly what the manifest recorded for another entry.
    recorded = {e.digest: e.path for e in manifest.entries if e.type == "file"}
    for entry, node in changed_content:
        got = digests.get(node.path)
        other = recorded.get(got.digest) if got else None
        if other and other != entry.path:
            changes.append(
                Change(
                    "swapped",
                    entry.path,
                    f"{entry.path} now holds the content recorded for {other} (files swapped or substituted)",
                    RULE_RENAMED,
                    {"digest": entry.digest, "size": entry.size},
                    {"digest": got.digest, "size": node.size, "content_of": other},
                )
            )
            continue
        if entry.size is not None and entry.size != node.size:
            detail = (
                f"{entry.path} changed: size {entry.size} -> {node.size} bytes "
                f"({_size_hint(entry.size, node.size)}; not hashed, the size already differs)"
            )
            actual: dict[str, Any] = {"size": node.size}
        else:
            size_note = f"same size {node.size} bytes" if entry.size is not None else f"now {node.size} bytes"
            detail = (
                (
                    f"{entry.path} changed: {algorithm} {entry.digest[:16]}... -> {got.digest[:16]}... "
                    f"({size_note})"
                )
                if got
                else f"{entry.path} changed"
            )
            actual = {"size": node.size, "digest": got.digest if got else None}
        changes.append(
            Change(
                "modified",
                entry.path,
                detail,
                RULE_MODIFIED,
                {"size": entry.size, "digest": entry.digest},
                actual,
            )
        )

    for entry in missing:
        changes.append(
            Change(
                "missing",
                entry.path,
                f"{entry.path} is missing ({entry.kind}, {_bytes(entry.size)})",
                RULE_MISSING,
                {"size": entry.size, "digest": entry.digest},
            )
        )
    for node in still_added:
        if node.type == "symlink":
            escapes = not link_stays_inside(root, node.path, node.target or "")
            why = "points outside the root" if escapes else "links are not allowed in this manifest"
            if escapes or not allow:
                changes.append(
                    Change(
                        "symlink",
                        node.path,
                        f"{node.path} is a symbolic link to {node.target!r} "
                        f"that is not in the manifest ({why})",
                        RULE_SYMLINK,
                        actual={"target": node.target},
                    )
                )
                continue
        got = digests.get(node.path)
        changes.append(
            Change(
                "added",
                node.path,
                f"{node.path} is not in the manifest ({_describe(node)}, "
                f"{_bytes(node.size)}); add it by recreating the manifest or --ignore it",
                RULE_ADDED,
                actual={"size": node.size, "type": node.type, **({"digest": got.digest} if got else {})},
            )
        )

    changes.sort(key=lambda c: (c.path, c.change))
    metrics = {
        "files_checked": float(len(expected)),
        "files_hashed": float(len(digests)),
        "bytes_hashed": float(sum(d.size for d in digests.values())),
        "hash_seconds": seconds,
    }
    return changes, metrics


def _symlink_changes(root: Path, entry: ManifestEntry, node: Node, algorithm: str) -> list[Change]:
    target = node.target or ""
    if not link_stays_inside(root, node.path, target):
        return [
            Change(
                "symlink",
                node.path,
                f"{node.path} now points outside the root ({target!r})",
                RULE_SYMLINK,
                {"target": entry.target},
                {"target": target},
            )
        ]
    if digest_bytes(target.encode(), algorithm) != entry.digest:
        return [
            Change(
                "modified",
                node.path,
                f"{node.path} link target changed: {entry.target!r} -> {target!r}",
                RULE_MODIFIED,
                {"target": entry.target},
                {"target": target},
            )
        ]
    return []


def _describe(node: Node) -> str:
    if node.type == "symlink":
        return f"symbolic link to {node.target!r}"
    return "regular file" if node.type == "file" else "special file (device, socket or pipe)"


def _bytes(size: int | None) -> str:
    return "size unknown" if size is None else f"{size} bytes"


def _size_hint(before: int, after: int) -> str:
    return f"truncated by {before - after}" if after < before else f"grew by {after - before}"


def verify_manifest(
    path: Path | str | None = None,
    root: Path | str | None = None,
    *,
    pubkey: Path | str | None = None,
    signature: Path | str | None = None,
    allow_unsigned: bool | None = None,
    allow_symlinks: bool | None = None,
    scan_policy: Any = None,
    workers: int | None = None,
) -> IntegrityResult:
    """Verify the directory ``root`` (default: the manifest's recorded root) against the manifest,
    and the manifest's signature with the trusted public key.

    ``path`` may be an aisp manifest or an OpenSSF model-signing bundle; it defaults to the
    configured manifest (``--aisp-manifest``, ``[tool.aisp] manifest``, ``AISP_MANIFEST``, else
    ``aisp-manifest.json`` at the project root), verified under ``[tool.aisp.supply] root``.
    ``pubkey`` defaults to ``AISP_PUBKEY`` / ``[tool.aisp.supply] pubkey``. A signature is required:
    without a key this raises ``AispError``, unless ``allow_unsigned`` (default
    ``[tool.aisp.supply] allow_unsigned``, false) says to compare digests only; such a result is
    not ``authenticated``. A missing, foreign or broken signature is a finding.

    Models the manifest recorded a scan verdict for are judged under ``scan_policy`` (default: the
    configured ``[tool.aisp.scan]``): the recorded verdict stands when it was made under the same
    policy; otherwise the (intact) model is scanned again. An unsafe model is an
    ``AISP-SUPPLY-SCAN`` finding, not a change.
    Never raises on a finding; raises ``AispError`` (``ManifestError``) when nothing could be checked.
    """
    configured = supply_settings()
    if path is None:
        path = configured.manifest
        root = root if root is not None else configured.root
    pubkey = pubkey if pubkey is not None else configured.pubkey
    allow_unsigned = configured.allow_unsigned if allow_unsigned is None else allow_unsigned
    allow_symlinks = configured.allow_symlinks if allow_symlinks is None else allow_symlinks
    manifest_path = Path(path)
    if manifest_path.is_dir():
        manifest_path = manifest_path / DEFAULT_NAME
    if pubkey is None and not allow_unsigned:
        raise AispError(missing_key_message(f"manifest {manifest_path}"))
    extra_ignores: tuple[str, ...] = ()
    signature_findings: list[Finding] = []
    signature_state = "not checked"
    if is_model_signing_bundle(manifest_path):
        if pubkey is None:
            raise AispError(
                f"{manifest_path} is a model-signing bundle: pass --pubkey to check its signature"
            )
        bundle = read_bundle(manifest_path, pubkey)
        manifest, extra_ignores = bundle.manifest, bundle.ignores
        signature_state = "valid" if bundle.finding is None else "invalid"
        if bundle.finding is not None:
            signature_findings.append(bundle.finding)
        root_path = Path(root) if root is not None else manifest_path.parent
    else:
        manifest = load_manifest(manifest_path)
        root_path = Path(root) if root is not None else default_root(manifest_path, manifest)
        if pubkey is not None:
            from pytest_aisp.supply.signing import check_manifest_signature

            check = check_manifest_signature(manifest_path, pubkey, signature)
            signature_state = "valid" if check.ok else "invalid"
            if check.finding is not None:
                signature_findings.append(check.finding)
    own = _own_files(root_path, manifest_path)
    if manifest.source != "model-signing" and is_model_signing_bundle(root_path / BUNDLE_NAME):
        # `aisp manifest sign --format model-signing` writes its bundle here, after the manifest.
        own = (*own, "/" + BUNDLE_NAME)
    started = time.perf_counter()
    changes, metrics = compare(
        manifest,
        root_path,
        extra_ignores=(*extra_ignores, *own),
        workers=workers,
        allow_symlinks=allow_symlinks,
    )
    metrics["verify_seconds"] = time.perf_counter() - started
    root_display = os.path.relpath(root_path) if not Path(root_path).is_absolute() else str(root_path)
    unsafe = _unsafe_models(manifest, root_path, changes, scan_policy, root_display)
    findings = tuple(signature_findings + [_finding(c, root_display) for c in changes] + unsafe)
    result = IntegrityResult(
        manifest_path, root_path, manifest, tuple(changes), findings, metrics, signature_state
    )
    record_findings(result.findings)
    record_metric("supply_files_checked", metrics["files_checked"])
    record_metric("supply_authenticated", 1.0 if result.authenticated else 0.0)
    return result


def _unsafe_models(
    manifest: Manifest, root: Path, changes: Sequence[Change], policy: Any, root_display: str
) -> list[Finding]:
    """``AISP-SUPPLY-SCAN`` findings for the intact models that are unsafe under the scan policy."""
    recorded = [e for e in manifest.entries if e.scan is not None]
    if not recorded:
        return []
    the_policy = resolve_scan_policy(policy)
    fingerprint = policy_fingerprint(the_policy)
    changed = {c.path for c in changes} | {str(c.expected.get("path")) for c in changes}
    findings = []
    for entry in recorded:
        if entry.path in changed:
            continue  # reported as a change: its recorded verdict is about other bytes
        verdict: Mapping[str, Any] = entry.scan or {}
        when = "when the manifest was made"
        if verdict.get("policy") != fingerprint:
            verdict = scan_verdict(root / entry.path, the_policy)
            when = f"under the configured scan policy ({the_policy.source})"
        if verdict.get("ok") is True:
            continue
        rules = ", ".join(verdict.get("findings") or []) or "no verdict recorded"
        findings.append(
            Finding(
                RULE_SCAN,
                SEVERITIES[RULE_SCAN],
                f"{entry.path} is unsafe by the static scan {when} ({rules})",
                _location(root_display, entry.path),
                {"path": entry.path, "scan": dict(verdict)},
            )
        )
    return findings


def assert_manifest_intact(
    artifact_manifest: IntegrityResult | Path | str | None = None,
    root: Path | str | None = None,
    *,
    pubkey: Path | str | None = None,
    allow_unsigned: bool | None = None,
    fail_on: Severity | str | None = None,
) -> IntegrityResult:
    """Fail the test (``IntegrityFailure``) when the artifacts differ from their manifest or its
    signature does not verify with the trusted key.

    Takes the ``artifact_manifest`` fixture's result (verified once per session) or a manifest path,
    verified as :func:`verify_manifest` does: a signature is required unless ``allow_unsigned``.
    """
    __tracebackhide__ = True
    from pytest_aisp.verdict import enforce

    if isinstance(artifact_manifest, IntegrityResult):
        result = artifact_manifest
        record_findings(result.findings)
    else:
        result = verify_manifest(artifact_manifest, root, pubkey=pubkey, allow_unsigned=allow_unsigned)
    first = (
        result.changes[0].detail
        if result.changes
        else (result.findings[0].message if result.findings else "")
    )
    enforce(
        result.findings,
        IntegrityFailure,
        result=result,
        fail_on=fail_on,
        headline=f"artifacts under {result.root} do not match {result.manifest_path}: {result.summary()}",
        details=f"first difference: {first}" if first else "",
    )
    return result


def manifest_from_settings(settings: Any) -> IntegrityResult:
    """The ``artifact_manifest`` fixture: verify the configured manifest (``--aisp-manifest``, or
    ``aisp-manifest.json`` at the rootdir) once per session with ``[tool.aisp.supply]`` ``root``,
    ``allow_symlinks`` and the release key (``AISP_PUBKEY`` / ``pubkey``). Without a key it raises
    ``AispError`` (the tests error), unless ``allow_unsigned = true`` is set."""
    configured = supply_settings(settings)
    if configured.pubkey is None and not configured.allow_unsigned:
        raise AispError(missing_key_message(f"artifact_manifest ({configured.manifest})"))
    return verify_manifest(
        configured.manifest,
        configured.root,
        pubkey=configured.pubkey,
        allow_unsigned=configured.allow_unsigned,
        allow_symlinks=configured.allow_symlinks,
    )
