"""Build provenance: an in-toto Statement v1 with a SLSA v1 provenance predicate.

:func:`record_provenance` hashes the materials (data, scripts, configs), runs the build command,
hashes the products (models) and writes the statement, as a DSSE envelope when a key is given.
:func:`verify_provenance` checks that the products on disk are the recorded subjects and that the
materials still are what the model was built from, so a dataset swapped after training is caught.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_aisp.findings import AispError, Finding, IntegrityFailure, Severity
from pytest_aisp.recorder import record_findings
from pytest_aisp.supply.hashing import FileDigest, check_algorithm, digest_files
from pytest_aisp.supply.manifest import (
    DEFAULT_IGNORES,
    ManifestError,
    builder_identity,
    check_entry_path,
    walk,
    write_atomic,
)
from pytest_aisp.supply.settings import missing_key_message, supply_settings
from pytest_aisp.supply.signing import RULE_SIGNATURE, dsse_sign, dsse_verify

RULE_PROVENANCE = "AISP-SUPPLY-PROVENANCE"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
SLSA_PREDICATE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://github.com/pytest-aisp/pytest-aisp/provenance/run/v1"
BUILDER_ID = "https://github.com/pytest-aisp/pytest-aisp/aisp-provenance-run"
PAYLOAD_TYPE = "application/vnd.in-toto+json"


@dataclass(frozen=True)
class Descriptor:
    """One recorded file: a SLSA ResourceDescriptor with ``name``, ``digest`` and its size."""

    name: str
    digest: str
    size: int | None
    role: str  # "product" | "material"


@dataclass(frozen=True)
class ProvenanceResult:
    """What verifying a provenance statement found."""

    statement_path: Path
    subjects: tuple[Descriptor, ...]
    materials: tuple[Descriptor, ...]
    findings: tuple[Finding, ...]
    signature: str = "not checked"
    metrics: Mapping[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def authenticated(self) -> bool:
        """Whether the statement's DSSE signature verified with the trusted public key."""
        return self.signature == "valid"


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _relative(path: str | Path, root: Path) -> str:
    absolute = Path(path) if Path(path).is_absolute() else Path.cwd() / path
    rel = Path(os.path.relpath(absolute.resolve(), root.resolve())).as_posix()
    if rel.startswith("../") or rel == "..":
        raise AispError(
            f"{path} is outside the provenance root {root}; pass --root to a directory holding it"
        )
    return rel


def collect(paths: Sequence[str | Path], root: Path, role: str, algorithm: str) -> list[Descriptor]:
    """Hash the files named by ``paths`` (directories walked, links refused) relative to ``root``."""
    rels: list[str] = []
    for path in paths:
        rel = _relative(path, root)
        full = root / rel
        if full.is_symlink():
            raise AispError(f"{role} {path} is a symbolic link; record the file it points to")
        if full.is_dir():
            for node in walk(full, DEFAULT_IGNORES):
                if node.type != "file":
                    raise AispError(
                        f"{role} {full / node.path} is not a regular file; remove it or record files"
                    )
                rels.append(f"{rel}/{node.path}" if rel != "." else node.path)
        elif full.is_file():
            rels.append(rel)
        else:
            raise AispError(f"{role} {path} does not exist")
    rels = sorted(dict.fromkeys(rels))
    results = digest_files(rels, algorithm, root=root)
    descriptors = []
    for rel, result in zip(rels, results):
        if isinstance(result, AispError):
            raise result
        descriptors.append(Descriptor(rel, result.digest, result.size, role))
    return descriptors


def _resource(d: Descriptor, algorithm: str) -> dict[str, Any]:
    return {"name": d.name, "digest": {algorithm: d.digest}, "annotations": {"size": d.size}}


def build_statement(
    command: Sequence[str],
    materials: Sequence[Descriptor],
    products: Sequence[Descriptor],
    algorithm: str,
    started: str,
    finished: str,
) -> dict[str, Any]:
    """The in-toto Statement v1 with a SLSA v1 provenance predicate."""
    from pytest_aisp import __version__

    return {
        "_type": STATEMENT_TYPE,
        "subject": [_resource(d, algorithm) for d in products],
        "predicateType": SLSA_PREDICATE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {"command": list(command)},
                "internalParameters": {"tool": f"pytest-aisp {__version__}"},
                "resolvedDependencies": [_resource(d, algorithm) for d in materials],
            },
            "runDetails": {
                "builder": {"id": BUILDER_ID, "version": {"pytest-aisp": __version__}},
                "metadata": {"invocationId": str(uuid.uuid4()), "startedOn": started, "finishedOn": finished},
                "byproducts": [
                    {
                        "name": "builder-environment",
                        "content": base64.b64encode(
                            json.dumps(builder_identity(), sort_keys=True).encode()
                        ).decode(),
                        "mediaType": "application/json",
                    }
                ],
            },
        },
    }


def record_provenance(
    command: Sequence[str],
    *,
    materials: Sequence[str | Path],
    products: Sequence[str | Path],
    output: str | Path = "provenance.intoto.json",
    key: str | Path | None = None,
    root: str | Path = ".",
    algorithm: str = "sha256",
    timeout: float | None = None,
) -> Path:
    """Run ``command`` in ``root`` between hashing materials and products; write the (signed) statement.

    A command that fails writes nothing and raises ``AispError``: provenance of a failed build
    would vouch for whatever was left on disk.
    """
    check_algorithm(algorithm)
    root_path = Path(root)
    before = collect(materials, root_path, "material", algorithm)
    started = _now()
    try:
        done = subprocess.run(list(command), cwd=root_path, check=False, timeout=timeout)
    except OSError as exc:
        raise AispError(f"cannot run {command[0]!r}: {exc.strerror}") from None
    except subprocess.TimeoutExpired:
        raise AispError(f"{' '.join(command)} ran past {timeout} s; no provenance written") from None
    if done.returncode != 0:
        raise AispError(f"{' '.join(command)} exited {done.returncode}; no provenance written")
    finished = _now()
    after = collect(products, root_path, "product", algorithm)
    statement = build_statement(command, before, after, algorithm, started, finished)
    payload = json.dumps(statement, indent=2, sort_keys=True).encode()
    if key is not None:
        return write_atomic(output, (json.dumps(dsse_sign(PAYLOAD_TYPE, payload, key), indent=2) + "\n").encode())
    return write_atomic(output, payload + b"\n")


def _descriptors(items: Any, role: str) -> list[Descriptor]:
    if not isinstance(items, list):
        raise ManifestError(f"{role}s must be a list of resource descriptors")
    out = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("digest"), dict) or not item["digest"]:
            raise ManifestError(f"{role} {item!r} has no name and digest")
        name = check_entry_path(item.get("name"))
        algorithm, digest = next(iter(sorted(item["digest"].items())))
        size = (item.get("annotations") or {}).get("size")
        out.append(
            Descriptor(name, str(digest), size if isinstance(size, int) else None, f"{role}:{algorithm}")
        )
    return out


def load_statement(path: Path, pubkey: str | Path | None) -> tuple[dict[str, Any], str, list[Finding]]:
    """The statement inside ``path`` (plain or DSSE), the signature state and any signature finding."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AispError(f"provenance statement {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise ManifestError(f"provenance statement {path} is not readable JSON: {exc}") from None
    findings: list[Finding] = []
    state = "not checked"
    if isinstance(data, dict) and "payloadType" in data:
        if data["payloadType"] != PAYLOAD_TYPE:
            raise ManifestError(f"{path}: DSSE payloadType {data['payloadType']!r} is not {PAYLOAD_TYPE}")
        if pubkey is not None:
            payload, valid = dsse_verify(data, pubkey)
            state = "valid" if valid else "invalid"
            if not valid:
                findings.append(
                    Finding(
                        RULE_SIGNATURE,
                        Severity.CRITICAL,
                        f"provenance signature does not verify with {pubkey} (wrong key or edited statement)",
                        str(path),
                    )
                )
        else:  # allow_unsigned without a key: read, not authenticated
            try:
                payload = base64.b64decode(str(data.get("payload", "")), validate=True)
            except ValueError as exc:
                raise ManifestError(f"{path}: the DSSE payload is not base64: {exc}") from None
        try:
            data = json.loads(payload)
        except ValueError as exc:
            raise ManifestError(f"{path}: the DSSE payload is not JSON: {exc}") from None
    elif pubkey is not None:
        state = "invalid"
        findings.append(
            Finding(
                RULE_SIGNATURE,
                Severity.CRITICAL,
                "provenance statement is not signed (a plain "
                "statement, not a DSSE envelope); record it with --key",
                str(path),
            )
        )
    if not isinstance(data, dict) or data.get("_type") != STATEMENT_TYPE:
        raise ManifestError(f"{path} is not an in-toto Statement v1 (_type {STATEMENT_TYPE})")
    if data.get("predicateType") != SLSA_PREDICATE:
        raise ManifestError(f"{path}: predicateType {data.get('predicateType')!r} is not {SLSA_PREDICATE}")
    return data, state, findings


def verify_provenance(
    statement: str | Path,
    *,
    root: str | Path = ".",
    pubkey: str | Path | None = None,
    allow_unsigned: bool | None = None,
    products: Sequence[str | Path] = (),
) -> ProvenanceResult:
    """Check the statement's signature, then products (subjects) and materials (resolvedDependencies)
    against the files under ``root``.

    ``pubkey`` defaults to ``AISP_PUBKEY`` / ``[tool.aisp.supply] pubkey``; without a key this raises
    ``AispError`` unless ``allow_unsigned`` (default ``[tool.aisp.supply] allow_unsigned``). A
    statement with no subject vouches for nothing and is a finding; so is each of ``products`` (paths
    under ``root``) that is not one of its subjects: a statement about another build.
    """
    path = Path(statement)
    configured = supply_settings()
    pubkey = pubkey if pubkey is not None else configured.pubkey
    allow_unsigned = configured.allow_unsigned if allow_unsigned is None else allow_unsigned
    if pubkey is None and not allow_unsigned:
        raise AispError(missing_key_message(f"provenance {path}"))
    data, state, findings = load_statement(path, pubkey)
    subjects, materials = statement_descriptors(data, path)
    root_path = Path(root)
    started = time.perf_counter()
    if not subjects:
        findings.append(
            Finding(
                RULE_PROVENANCE,
                Severity.CRITICAL,
                "the provenance statement names no subject: it vouches for no product",
                str(path),
                {"subjects": 0},
            )
        )
    subject_names = {d.name for d in subjects}
    for product in products:
        name = _relative(product, root_path) if Path(product).is_absolute() else Path(product).as_posix()
        if name not in subject_names:
            findings.append(
                Finding(
                    RULE_PROVENANCE,
                    Severity.CRITICAL,
                    f"product {name} is not a subject of {path} (it records "
                    f"{', '.join(sorted(subject_names)) or 'no subject'}): provenance of another build",
                    str(root_path / name),
                    {"role": "product", "expected_subject": name},
                )
            )
    for descriptor in (*subjects, *materials):
        findings.extend(_check(descriptor, root_path))
    findings_tuple = tuple(findings)
    record_findings(findings_tuple)
    return ProvenanceResult(
        path,
        tuple(subjects),
        tuple(materials),
        findings_tuple,
        state,
        {"provenance_seconds": time.perf_counter() - started},
    )


def statement_descriptors(data: Mapping[str, Any], path: Path) -> tuple[list[Descriptor], list[Descriptor]]:
    """The subjects (products) and resolved dependencies (materials) of a loaded statement."""
    try:
        subjects = _descriptors(data.get("subject"), "product")
        deps = data["predicate"]["buildDefinition"].get("resolvedDependencies", [])
        materials = _descriptors(deps, "material")
    except (KeyError, TypeError, AttributeError) as exc:
        raise ManifestError(f"{path}: the SLSA predicate lacks buildDefinition ({exc})") from None
    except ManifestError as exc:
        raise ManifestError(f"{path}: {exc}") from None
    return subjects, materials


def _check(d: Descriptor, root: Path) -> list[Finding]:
    role, algorithm = d.role.split(":", 1)
    full = root / d.name
    product = role == "product"
    severity = Severity.CRITICAL if product else Severity.HIGH
    what = (
        "the model or artifact was changed or replaced after it was built"
        if product
        else "the product was not built from the files now present (dataset or script swapped after training)"
    )
    evidence: dict[str, Any] = {"role": role, "expected_digest": d.digest, "expected_size": d.size}
    if algorithm not in ("sha256", "blake3"):
        return [
            Finding(
                RULE_PROVENANCE,
                severity,
                f"{role} {d.name}: digest {algorithm!r} cannot be checked",
                str(full),
                evidence,
            )
        ]
    real_root = os.path.realpath(root)
    if not os.path.realpath(full).startswith(real_root + os.sep):
        return [
            Finding(
                RULE_PROVENANCE,
                severity,
                f"{role} {d.name} resolves outside {root} through a symbolic link; refusing to read it",
                str(full),
                evidence,
            )
        ]
    if not full.is_file() or full.is_symlink():
        kind = "missing" if not os.path.lexists(full) else "not a regular file"
        return [Finding(RULE_PROVENANCE, severity, f"{role} {d.name} is {kind}: {what}", str(full), evidence)]
    size = full.stat().st_size
    if d.size is not None and size != d.size:
        return [
            Finding(
                RULE_PROVENANCE,
                severity,
                f"{role} {d.name} changed since the build (size {d.size} -> {size} bytes): {what}",
                str(full),
                {**evidence, "actual_size": size},
            )
        ]
    result = digest_files([d.name], algorithm, root=root)[0]
    if isinstance(result, AispError):
        return [
            Finding(
                RULE_PROVENANCE, severity, f"{role} {d.name} could not be read: {result}", str(full), evidence
            )
        ]
    assert isinstance(result, FileDigest)
    if result.digest != d.digest:
        return [
            Finding(
                RULE_PROVENANCE,
                severity,
                f"{role} {d.name} changed since the build ({algorithm} "
                f"{d.digest[:16]}... -> {result.digest[:16]}...): {what}",
                str(full),
                {**evidence, "actual_digest": result.digest},
            )
        ]
    return []


def assert_provenance_intact(
    statement: str | Path,
    *,
    root: str | Path = ".",
    pubkey: str | Path | None = None,
    allow_unsigned: bool | None = None,
    products: Sequence[str | Path] = (),
    fail_on: Severity | str | None = None,
) -> ProvenanceResult:
    """Fail the test when the statement's signature does not verify, it names no subject (or not
    ``products``), or products or materials differ from it. Arguments as :func:`verify_provenance`."""
    __tracebackhide__ = True
    from pytest_aisp.verdict import enforce

    result = verify_provenance(
        statement, root=root, pubkey=pubkey, allow_unsigned=allow_unsigned, products=products
    )
    enforce(
        result.findings,
        IntegrityFailure,
        result=result,
        fail_on=fail_on,
        headline=f"provenance {statement} does not match the files under {root}: "
        f"{len(result.findings)} problems",
        details=f"first: {result.findings[0].message}" if result.findings else "",
    )
    return result
