"""CycloneDX 1.6 ML-BOM from a manifest, through ``cyclonedx-python-lib``.

Models become ``machine-learning-model`` components, datasets ``data`` components, the rest ``file``
components, each with its hash. A provenance statement adds dependencies (each product depends on
the materials it was built from). What the library cannot write yet (the model card) goes into
``aisp:*`` properties.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pytest_aisp.backends import require
from pytest_aisp.findings import AispError
from pytest_aisp.supply.manifest import Manifest, load_manifest, write_atomic

MODEL_CARD_NAMES: tuple[str, ...] = ("MODEL_CARD.md", "model_card.md", "MODELCARD.md", "README.md")


def _card_for(manifest: Manifest, path: str) -> str | None:
    """The model card nearest to a model: a card file in the same directory, else at the root."""
    present = {e.path for e in manifest.entries}
    directory = path.rsplit("/", 1)[0] + "/" if "/" in path else ""
    for prefix in dict.fromkeys((directory, "")):
        for name in MODEL_CARD_NAMES:
            if prefix + name in present:
                return prefix + name
    return None


def build_bom(
    manifest: Manifest | str | Path,
    *,
    provenance: str | Path | None = None,
    name: str | None = None,
    version: str = "",
    root_name: str | None = None,
    pubkey: str | Path | None = None,
    allow_unsigned: bool | None = None,
) -> Any:
    """A ``cyclonedx.model.bom.Bom`` describing every manifest entry (and provenance dependencies).

    What the BOM is made from is authenticated first, as verification does: a manifest read from a
    file and the provenance statement must be signed by the release key (``pubkey``, default
    ``AISP_PUBKEY`` / ``[tool.aisp.supply] pubkey``) unless ``allow_unsigned``; every product of the
    statement must be a manifest entry with the same digest, and so must every material the
    manifest lists. Anything else raises ``AispError`` and no BOM is made.
    """
    require("cyclonedx", "sign", "the ML-BOM is written with cyclonedx-python-lib")
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType

    manifest_path = None
    if not isinstance(manifest, Manifest):
        manifest_path = Path(manifest)
        manifest = load_manifest(manifest_path)
    key = _trusted_key(pubkey, allow_unsigned, manifest_path, provenance)
    authenticated = {"manifest": manifest_path is None or _check_manifest(manifest_path, key)}
    links: list[tuple[str, list[str]]] = []
    if provenance is not None:
        authenticated["provenance"] = _read_provenance(Path(provenance), key, manifest, links)
    algorithm = HashAlgorithm.SHA_256 if manifest.algorithm == "sha256" else HashAlgorithm.BLAKE3
    types = {"model": ComponentType.MACHINE_LEARNING_MODEL, "dataset": ComponentType.DATA}
    from pytest_aisp import __version__

    top_name = (
        name
        or root_name
        or ((manifest_path.parent / manifest.root).resolve().name if manifest_path else "artifacts")
    )
    top = Component(
        name=top_name,
        version=version or None,
        type=ComponentType.APPLICATION,
        bom_ref=f"aisp:{top_name}",
        properties=[Property(name="aisp:root_digest", value=f"{manifest.algorithm}:{manifest.root_digest}")],
    )
    bom = Bom()
    bom.metadata.component = top
    bom.metadata.properties.add(Property(name="aisp:tool", value=f"pytest-aisp {__version__}"))
    for what, ok in authenticated.items():
        bom.metadata.properties.add(Property(name=f"aisp:{what}:authenticated", value=str(ok).lower()))
    git = manifest.provenance.get("git") or {}
    if git.get("commit"):
        bom.metadata.properties.add(Property(name="aisp:git:commit", value=str(git["commit"])))
    if git.get("remote"):
        bom.metadata.properties.add(Property(name="aisp:git:remote", value=str(git["remote"])))
    components: dict[str, Any] = {}
    for entry in manifest.entries:
        properties = [
            Property(name="aisp:path", value=entry.path),
            Property(name="aisp:kind", value=entry.kind),
        ]
        if entry.size is not None:
            properties.append(Property(name="aisp:size", value=str(entry.size)))
        if entry.kind == "model":
            card = _card_for(manifest, entry.path)
            if card:
                properties.append(Property(name="aisp:model-card", value=card))
            if entry.scan is not None:
                properties.append(
                    Property(name="aisp:scan:ok", value=str(bool(entry.scan.get("ok"))).lower())
                )
        component = Component(
            name=entry.path,
            type=types.get(entry.kind, ComponentType.FILE),
            bom_ref=f"file:{entry.path}",
            hashes=[HashType(alg=algorithm, content=entry.digest)],
            properties=properties,
        )
        components[entry.path] = component
        bom.components.add(component)
    bom.register_dependency(top, list(components.values()))
    for product, inputs in links:
        others = [components[m] for m in inputs if m != product]
        if others:
            bom.register_dependency(components[product], others)
    return bom


def _trusted_key(
    pubkey: str | Path | None, allow_unsigned: bool | None, manifest_path: Path | None, provenance: Any
) -> Path | None:
    """The release key, or None where nothing is read or unsigned input is explicitly allowed."""
    from pytest_aisp.supply.settings import missing_key_message, supply_settings

    if manifest_path is None and provenance is None:
        return None  # a Manifest object made in this process: nothing is read
    configured = supply_settings()
    key = Path(pubkey) if pubkey is not None else configured.pubkey
    allowed = configured.allow_unsigned if allow_unsigned is None else allow_unsigned
    if key is None and not allowed:
        raise AispError(missing_key_message(f"BOM of {manifest_path or 'the manifest'}"))
    return key


def _check_manifest(manifest_path: Path, key: Path | None) -> bool:
    """Whether the manifest's signature verified (False without a key); ``AispError`` when it does not."""
    if key is None:
        return False
    from pytest_aisp.supply.signing import check_manifest_signature

    check = check_manifest_signature(manifest_path, key)
    if check.finding is not None:
        raise AispError(f"no BOM written: {check.finding.message} ({manifest_path})")
    return True


def _read_provenance(
    statement_path: Path, key: Path | None, manifest: Manifest, links: list[tuple[str, list[str]]]
) -> bool:
    """Authenticate the statement and match its products and materials to manifest entries by name
    and digest; append (product, materials) to ``links``. Return whether it was authenticated."""
    from pytest_aisp.supply.provenance import load_statement, statement_descriptors

    statement, state, findings = load_statement(statement_path, key)
    if findings:
        raise AispError(f"no BOM written: {findings[0].message} ({statement_path})")
    subjects, materials = statement_descriptors(statement, statement_path)
    if not subjects:
        raise AispError(f"no BOM written: {statement_path} names no subject (it vouches for no product)")
    products = [_match(d, manifest, statement_path, required=True) for d in subjects]
    inputs = [m for m in (_match(d, manifest, statement_path, required=False) for d in materials) if m]
    links.extend((product, inputs) for product in products if product)
    return state == "valid"


def _match(descriptor: Any, manifest: Manifest, statement_path: Path, *, required: bool) -> str | None:
    """The manifest entry a statement descriptor names. Paths in the statement are relative to where
    the build ran, so a name matches an entry path by its tail; the digest must then be the same."""
    role, algorithm = descriptor.role.split(":", 1)
    name = descriptor.name
    candidates = [
        e.path
        for e in manifest.entries
        if e.path == name or name.endswith("/" + e.path) or e.path.endswith("/" + name)
    ]
    if not candidates:
        if required:
            raise AispError(
                f"no BOM written: {role} {name} of {statement_path} is not in the manifest "
                "(the statement is about other artifacts, or the manifest leaves the product out)"
            )
        return None  # a material that is not shipped (training data, scripts): no component to link
    if algorithm != manifest.algorithm:
        raise AispError(
            f"no BOM written: {statement_path} records {algorithm} digests and the manifest "
            f"{manifest.algorithm}; record both with the same --alg"
        )
    by_path = manifest.by_path()
    for path in candidates:
        if by_path[path].digest == descriptor.digest:
            return path
    raise AispError(
        f"no BOM written: {role} {name} has digest {descriptor.digest[:16]}... in {statement_path} but "
        f"{by_path[candidates[0]].digest[:16]}... in the manifest: they describe different files"
    )


def bom_json(bom: Any) -> str:
    """The BOM as CycloneDX 1.6 JSON text."""
    from cyclonedx.output.json import JsonV1Dot6

    return JsonV1Dot6(bom).output_as_string(indent=2)


def validate_bom_json(text: str) -> list[str]:
    """Schema errors of a CycloneDX 1.6 JSON document (empty when valid), with the library's validator."""
    require("cyclonedx", "sign")
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text, all_errors=True)
    return [str(e) for e in errors] if errors else []


def write_bom(
    manifest: str | Path,
    output: str | Path = "bom.cdx.json",
    *,
    provenance: str | Path | None = None,
    name: str | None = None,
    version: str = "",
    pubkey: str | Path | None = None,
    allow_unsigned: bool | None = None,
) -> Path:
    """Write the ML-BOM for ``manifest`` (authenticated as :func:`build_bom` says); raise
    ``AispError`` if it would not validate."""
    bom = build_bom(
        manifest, provenance=provenance, name=name, version=version, pubkey=pubkey, allow_unsigned=allow_unsigned
    )
    text = bom_json(bom)
    try:
        errors = validate_bom_json(text)
    except Exception as exc:  # the validator needs jsonschema; report what is missing, do not skip
        raise AispError(f"cannot validate the BOM: {exc}") from None
    if errors:
        raise AispError(f"the BOM does not validate against CycloneDX 1.6: {errors[0]}")
    json.loads(text)  # well-formed, for the record
    return write_atomic(output, (text if text.endswith("\n") else text + "\n").encode("utf-8"))
