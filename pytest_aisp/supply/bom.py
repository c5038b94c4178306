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
from pytest_aisp.supply.manifest import Manifest, load_manifest

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
) -> Any:
    """A ``cyclonedx.model.bom.Bom`` describing every manifest entry (and provenance dependencies)."""
    require("cyclonedx", "sign", "the ML-BOM is written with cyclonedx-python-lib")
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType

    manifest_path = None
    if not isinstance(manifest, Manifest):
        manifest_path = Path(manifest)
        manifest = load_manifest(manifest_path)
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
    if provenance is not None:
        _add_provenance_dependencies(bom, components, Path(provenance))
    return bom


def _add_provenance_dependencies(bom: Any, components: dict[str, Any], statement_path: Path) -> None:
    from pytest_aisp.supply.provenance import load_statement

    statement, _, _ = load_statement(statement_path, None)
    products = [s.get("name") for s in statement.get("subject", [])]
    materials = [
        d.get("name")
        for d in statement.get("predicate", {}).get("buildDefinition", {}).get("resolvedDependencies", [])
    ]

    # Paths in the statement are relative to where the build ran; match them by their tail.
    def find(name: Any) -> Any:
        if not isinstance(name, str):
            return None
        for path, component in components.items():
            if path == name or name.endswith("/" + path) or path.endswith("/" + name):
                return component
        return None

    inputs = [c for c in (find(m) for m in materials) if c is not None]
    for product in products:
        component = find(product)
        if component is not None and inputs:
            bom.register_dependency(component, [c for c in inputs if c is not component])


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
) -> Path:
    """Write the ML-BOM for ``manifest``; raise ``AispError`` if it would not validate."""
    text = bom_json(build_bom(manifest, provenance=provenance, name=name, version=version))
    try:
        errors = validate_bom_json(text)
    except Exception as exc:  # the validator needs jsonschema; report what is missing, do not skip
        raise AispError(f"cannot validate the BOM: {exc}") from None
    if errors:
        raise AispError(f"the BOM does not validate against CycloneDX 1.6: {errors[0]}")
    out = Path(output)
    out.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    json.loads(text)  # well-formed, for the record
    return out
