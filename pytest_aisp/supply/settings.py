"""What the supply checks read from the configuration, so the Python API, the fixture and the
``aisp`` subcommands agree: ``[tool.aisp.supply]`` (the release public key, whether unsigned
verification is allowed, the root and the link policy) and ``[tool.aisp.scan]`` (the policy a
manifest's ``--scan`` verdicts are made with).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_aisp.config import Settings, current_settings
from pytest_aisp.findings import AispError

PUBKEY_ENV = "AISP_PUBKEY"
SUPPLY_KEYS: frozenset[str] = frozenset(
    {"root", "pubkey", "allow_unsigned", "allow_symlinks", "require_signature"}
)
DEFAULT_MANIFEST = "aisp-manifest.json"


@dataclass(frozen=True)
class SupplySettings:
    """``[tool.aisp.supply]`` resolved: paths absolute against the rootdir, the key's source named."""

    manifest: Path
    root: Path | None = None
    pubkey: Path | None = None
    pubkey_source: str = ""
    allow_unsigned: bool = False
    allow_symlinks: bool | None = None


def supply_settings(settings: Settings | None = None, environ: Mapping[str, str] | None = None) -> SupplySettings:
    """The supply settings in force (``settings`` or :func:`pytest_aisp.config.current_settings`).

    The public key comes from ``AISP_PUBKEY`` above ``[tool.aisp.supply] pubkey`` (the environment
    sits above the files, as for every option). Unknown keys are an error: a misspelt
    ``pubkey`` must not silently turn a signature check off.
    """
    settings = settings if settings is not None else current_settings()
    environ = os.environ if environ is None else environ
    section = settings.section("supply")
    unknown = sorted(set(section) - SUPPLY_KEYS)
    if unknown:
        raise AispError(
            f"[tool.aisp.supply]: unknown keys {unknown}; allowed: {sorted(SUPPLY_KEYS - {'require_signature'})}"
        )
    if section.get("require_signature") is False:
        raise AispError(
            "[tool.aisp.supply] require_signature = false: a signature is always required now; "
            "to verify digests without authenticating them, set allow_unsigned = true"
        )
    allow_unsigned = _bool(section, "allow_unsigned", False)
    allow_symlinks = _bool(section, "allow_symlinks", None)
    pubkey_raw: Any = environ.get(PUBKEY_ENV) or None
    source = f"environment {PUBKEY_ENV}"
    if pubkey_raw is None:
        pubkey_raw = section.get("pubkey")
        source = "[tool.aisp.supply] pubkey"
    root_raw = section.get("root")
    for name, value in (("pubkey", pubkey_raw), ("root", root_raw)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise AispError(f"[tool.aisp.supply] {name} must be a path string, not {value!r}")
    return SupplySettings(
        manifest=settings.manifest or settings.rootdir / DEFAULT_MANIFEST,
        root=settings.resolve(Path(os.path.expanduser(root_raw))) if root_raw else None,
        pubkey=settings.resolve(Path(os.path.expanduser(pubkey_raw))) if pubkey_raw else None,
        pubkey_source=source if pubkey_raw else "",
        allow_unsigned=bool(allow_unsigned),
        allow_symlinks=allow_symlinks,
    )


def _bool(section: Mapping[str, Any], key: str, default: bool | None) -> bool | None:
    value = section.get(key, default)
    if value is not None and not isinstance(value, bool):
        raise AispError(f"[tool.aisp.supply] {key} must be true or false, not {value!r}")
    return value


def missing_key_message(what: str) -> str:
    """The error for a check that needs the release public key and has none: where to set it, and
    how to opt out explicitly."""
    return (
        f"{what}: no public key to authenticate it. Pass --pubkey PUBLIC.pem (Python: pubkey=...), or "
        f"set {PUBKEY_ENV} or [tool.aisp.supply] pubkey. To compare digests without authenticating "
        "them, pass --allow-unsigned (allow_unsigned=True) or set [tool.aisp.supply] allow_unsigned = true"
    )


def resolve_scan_policy(policy: Any = None, settings: Settings | None = None) -> Any:
    """``policy`` as a ``ScanPolicy`` (a policy, a ``[tool.aisp.scan]``-shaped table or a TOML path),
    or the configured one when it is None."""
    if policy is None:
        return scan_policy_from_settings(settings)
    from pytest_aisp.scan.policy import coerce_policy

    return coerce_policy(policy)


def policy_fingerprint(policy: Any) -> str:
    """A digest of what a scan policy decides with (allow, deny, fail_on, limits; not its source):
    a verdict recorded under another policy is judged again."""
    import dataclasses
    import hashlib
    import json

    content = {
        "allow": sorted(policy.allow),
        "deny": sorted(policy.deny),
        "fail_on": policy.fail_on.value,
        "limits": dataclasses.asdict(policy.limits),
    }
    return "sha256:" + hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def scan_policy_from_settings(settings: Settings | None = None) -> Any:
    """The scan policy ``[tool.aisp.scan]`` configures (the shipped default when it is absent), as
    ``aisp scan`` applies it."""
    # The scan module owns this mapping; it is built with its own loader so both agree.
    from pytest_aisp.scan.policy import default_policy, policy_from_mapping

    settings = settings if settings is not None else current_settings()
    table = settings.tool.get("scan")
    if table is None:
        return default_policy()
    if not isinstance(table, Mapping):
        raise AispError("[tool.aisp.scan] must be a table of allow/deny/fail_on/limits")
    return policy_from_mapping(table, source="[tool.aisp.scan]")
