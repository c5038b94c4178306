"""The configuration form: module sections as TOML text, validated, written to ``aisp.toml``.

Secrets are never stored: a key that names a secret (token, key, password, secret, authorization)
must hold an environment reference such as ``${OPENAI_API_KEY}``.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_aisp.config import OPTIONS_BY_NAME
from pytest_aisp.findings import AispError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SECRET_KEY = re.compile(r"(token|secret|password|passwd|api_?key|authorization|credential)", re.IGNORECASE)
ENV_REFERENCE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")
BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def module_sections_text(table: Mapping[str, Any]) -> str:
    """The ``[tool.aisp.<module>]`` sections of ``table`` as TOML text for the form."""
    sections = {k: v for k, v in table.items() if isinstance(v, Mapping)}
    return "".join(_section(name, values) for name, values in sorted(sections.items()))


def parse_sections(text: str) -> dict[str, dict[str, Any]]:
    """Module sections from the form's TOML text; ``AispError`` naming what is wrong."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AispError(f"module settings are not valid TOML: {exc}") from None
    for name, values in data.items():
        if not isinstance(values, dict):
            raise AispError(f"module settings must be tables such as [llm]; {name!r} is a plain value")
        _refuse_secrets(name, values)
    return data


def _refuse_secrets(where: str, values: Mapping[str, Any]) -> None:
    for key, value in values.items():
        if isinstance(value, Mapping):
            _refuse_secrets(f"{where}.{key}", value)
        elif SECRET_KEY.search(key) and not (isinstance(value, str) and ENV_REFERENCE.match(value)):
            raise AispError(
                f"[{where}] {key} looks like a secret: store the name of an environment variable instead, "
                f'e.g. {key} = "${{MY_SECRET}}"'
            )


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return json.dumps(str(value))


def _key(key: str) -> str:
    return key if BARE_KEY.match(key) else json.dumps(key)


def _section(name: str, values: Mapping[str, Any]) -> str:
    lines = [f"[{_key(name)}]"]
    nested = []
    for key, value in values.items():
        if isinstance(value, Mapping):
            nested.append((f"{name}.{key}", value))
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    text = "\n".join(lines) + "\n\n"
    return text + "".join(_section(n, v) for n, v in nested)


def write_aisp_toml(root: Path, values: Mapping[str, str], sections: Mapping[str, Mapping[str, Any]]) -> Path:
    """Write ``aisp.toml`` at ``root``: the core options at the top, module sections below."""
    lines = ["# pytest-aisp settings, written by the aisp dashboard. Secrets: only ${ENV_VAR} names.", ""]
    for name, raw in values.items():
        if raw and name in OPTIONS_BY_NAME:
            parsed = OPTIONS_BY_NAME[name].parse(raw)
            lines.append(f"{name} = {_value(parsed if isinstance(parsed, int) else raw)}")
    body = "\n".join(lines) + "\n\n" + "".join(_section(n, v) for n, v in sections.items())
    tomllib.loads(body)  # never write a file the plugin could not read back
    path = root / "aisp.toml"
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text(body, encoding="utf-8")
    tmp.replace(path)
    return path
