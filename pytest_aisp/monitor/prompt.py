"""Prompt attacks at LLM endpoints, using the LLM module's text detectors (one copy, shared)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from pytest_aisp.findings import AispError, Severity
from pytest_aisp.llm.detectors import PROMPT_KINDS, RESPONSE_KINDS, scan_prompt, scan_response
from pytest_aisp.monitor.core import make_alert
from pytest_aisp.monitor.events import Alert, Event

# Response signals that show an attack worked. PII and code are left out by default: a support
# bot may legitimately answer with a support address or a shell command.
DEFAULT_RESPONSE_KINDS = ("secret", "canary", "api-key", "exfil-image", "exfil-link", "script")
LEAK_KINDS = frozenset({"secret", "canary", "api-key"})


class PromptAttackDetector:
    """Flags attack prompts (``event.features`` as text) and leaking answers (``event.prediction``).

    Parameters:

    - ``prompt_kinds``: prompt signals that alert (default: all of the LLM module's
      ``PROMPT_KINDS``: hidden characters, unicode tags, encoded payloads, injection,
      jailbreak and prompt-extraction phrasing);
    - ``response_kinds``: answer signals that alert (default: secrets, canaries, API keys,
      exfiltrating links and images, scripts); a leak is critical;
    - ``canaries``: canary strings planted in the system prompt;
    - ``secrets_env``: names of environment variables whose values must never appear in an
      answer (secrets are read from the environment, never from configuration files);
    - ``allowed_hosts``: hosts that links in answers may point to.

    Alerts carry the signal kinds and the LLM module's details with every canary and secret
    replaced by its position (``[redacted canary #1]``): a canary is often a real secret, and
    alerts travel to logs, webhooks and dashboards. A prompt cut at the middleware's
    ``max_body`` is scanned as far as it was read (the alert says ``partial``).
    """

    name = "prompt"
    rule_id = "AISP-MON-PROMPT-ATTACK"
    severity = Severity.HIGH

    def __init__(self, *, prompt_kinds: Iterable[str] = PROMPT_KINDS,
                 response_kinds: Iterable[str] = DEFAULT_RESPONSE_KINDS, canaries: Iterable[str] = (),
                 secrets_env: Iterable[str] = (), allowed_hosts: Iterable[str] = ()) -> None:
        self.prompt_kinds = frozenset(prompt_kinds)
        self.response_kinds = frozenset(response_kinds)
        unknown = (self.prompt_kinds - set(PROMPT_KINDS)) | (self.response_kinds - set(RESPONSE_KINDS))
        if unknown:
            raise ValueError(f"unknown signal kinds {sorted(unknown)}; prompt kinds: {list(PROMPT_KINDS)}, "
                             f"response kinds: {list(RESPONSE_KINDS)}")
        self.canaries = tuple(canaries)
        missing = [name for name in secrets_env if not os.environ.get(name)]
        if missing:
            raise AispError(f"secrets_env names unset environment variables {missing}; export them "
                            "(from your secret store) before the monitor starts")
        self._secrets = tuple(os.environ[name] for name in secrets_env)
        self.allowed_hosts = tuple(allowed_hosts)
        self._redactions = tuple(
            [(marker, f"[redacted canary #{i + 1}]") for i, marker in enumerate(self.canaries) if marker]
            + [(marker, f"[redacted secret #{i + 1}]") for i, marker in enumerate(self._secrets) if marker])

    def redact(self, text: str) -> str:
        """``text`` with every declared canary and secret replaced by its label, also where a detail
        was cut short inside one (its first characters before ``...``)."""
        for marker, label in self._redactions:
            text = re.sub(re.escape(marker), label, text, flags=re.IGNORECASE)  # labels hold no backslash
            pieces = text.split("...")
            for index, piece in enumerate(pieces[:-1]):
                folded = piece.casefold()
                for size in range(len(marker) - 1, 3, -1):
                    if folded.endswith(marker[:size].casefold()):
                        pieces[index] = piece[: len(piece) - size] + label
                        break
            text = "...".join(pieces)
        return text

    def observe(self, event: Event) -> list[Alert]:
        alerts: list[Alert] = []
        partial = "request-too-large" in event.uninspected
        if isinstance(event.features, str) and event.features:
            signals = [s for s in scan_prompt(event.features) if s.kind in self.prompt_kinds]
            if signals:
                kinds = sorted({s.kind for s in signals})
                details = [self.redact(s.detail) for s in signals[:3]]
                extra = {"partial": True} if partial else {}
                alerts.append(make_alert(
                    self, event, f"prompt from {event.client} carries an attack: {', '.join(kinds)} "
                    f"({details[0]}){' in the part of an oversized body that was read' if partial else ''}",
                    signal="prompt", kinds=kinds, details=details, **extra))
        if isinstance(event.prediction, str) and event.prediction:
            signals = [s for s in scan_response(event.prediction, secrets=self._secrets, canaries=self.canaries,
                                                allowed_hosts=self.allowed_hosts)
                       if s.kind in self.response_kinds]
            if signals:
                kinds = sorted({s.kind for s in signals})
                leak = bool(LEAK_KINDS & set(kinds))
                details = [self.redact(s.detail) for s in signals[:3]]
                alerts.append(make_alert(
                    self, event, f"answer to {event.client} {'leaks' if leak else 'carries'} "
                    f"{', '.join(kinds)} ({details[0]})",
                    severity=Severity.CRITICAL if leak else Severity.HIGH, signal="response", kinds=kinds,
                    details=details))
        return alerts
