"""What each recorded metric means to the gate and the trends page: which way is better, how much change is
noise (the tolerance), the range its axis spans, and whether it is a security measure at all.

Security measures (robust accuracy, attack success rates, leakage, agreement under perturbation ...) gate a
run and get a chart. Timings and counts have a direction too (less time is better) but are not security
regressions: they are shown, never gated, unless a team says so in ``[tool.aisp.dashboard.metrics]``::

    [tool.aisp.dashboard.metrics.llm_probe_seconds]
    gate = true          # a slower probe fails the gate
    tolerance = 0.5      # by more than 50 % (timings and counts compare relatively)

    [tool.aisp.dashboard.metrics.my_recall]
    better = "higher"
    tolerance = 0.01
    range = [0, 1]
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pytest_aisp.findings import AispError

SECURITY = "security"
TIMING = "timing"
COUNT = "count"
OTHER = "other"
DIRECTIONS = ("higher", "lower", "none")
RATE_TOLERANCE = 0.02
RELATIVE_TOLERANCE = 0.25


@dataclass(frozen=True)
class MetricSpec:
    """How one metric is read: ``better`` is ``higher``, ``lower`` or ``none``; ``tolerance`` is absolute, or a
    fraction of the previous value when ``relative``; ``lo``/``hi`` bound its axis (None: open)."""

    name: str
    label: str
    better: str
    kind: str
    tolerance: float = RATE_TOLERANCE
    relative: bool = False
    lo: float | None = 0.0
    hi: float | None = 1.0
    gate: bool = False
    meaning: str = ""

    def worse_by(self, before: float, after: float) -> float:
        """How much worse ``after`` is than ``before`` (negative: better), in the tolerance's unit."""
        if self.better == "none":
            return 0.0
        change = (after - before) if self.better == "lower" else (before - after)
        if self.relative:
            if before:
                return change / abs(before)
            return float("inf") if change > 0 else 0.0
        return change

    def regressed(self, before: float, after: float) -> bool:
        return self.worse_by(before, after) > self.tolerance


def _rate(name: str, label: str, better: str, meaning: str) -> MetricSpec:
    return MetricSpec(name, label, better, SECURITY, gate=True, meaning=meaning)


# Exact names first, then patterns (in order); names come from the modules' record_metric calls.
_EXACT: tuple[MetricSpec, ...] = (
    _rate("robust_acc", "robust accuracy", "higher", "share of inputs still classified right under the attack"),
    _rate("clean_acc", "clean accuracy", "higher", "share of unperturbed inputs classified right"),
    _rate("attack_success_rate", "attack success rate", "lower", "share of attacked inputs the attack fooled"),
    _rate("llm_attack_success_rate", "LLM attack success rate", "lower",
          "share of probe attempts the endpoint failed"),
    MetricSpec("llm_false_positive_rate", "LLM probe false-positive rate", "lower", OTHER,
               meaning="control prompts the detectors flagged (probe quality, not model security)"),
    MetricSpec("llm_attempts", "LLM probe attempts", "none", COUNT, lo=0.0, hi=None),
    _rate("backdoor_suspect_fraction", "backdoor suspect fraction", "lower", "training samples flagged as poisoned"),
    _rate("trigger_success_rate", "trigger success rate", "lower", "inputs a reconstructed trigger flips"),
    MetricSpec("trigger_anomaly_index", "trigger anomaly index", "lower", SECURITY, tolerance=0.5, lo=0.0, hi=None,
               gate=True, meaning="outlier score of the smallest trigger (above 2: likely backdoor)"),
    _rate("dataset_label_outlier_fraction", "label outlier fraction", "lower", "training labels that look wrong"),
    _rate("extraction_fidelity", "extraction fidelity", "lower", "agreement of a stolen copy with the model"),
    _rate("membership_auc", "membership inference AUC", "lower", "how well an attacker tells members apart"),
    _rate("membership_tpr_at_1pct_fpr", "membership TPR at 1% FPR", "lower", "members found at a 1% false alarm"),
    _rate("nlp_clean_accuracy", "NLP clean accuracy", "higher", "texts classified right before the attack"),
    _rate("nlp_attacked_accuracy", "NLP attacked accuracy", "higher", "texts classified right under the attack"),
    _rate("nlp_attack_success_rate", "NLP attack success rate", "lower", "texts the attack flipped"),
    _rate("nlp_counterfactual_flip_rate", "counterfactual flip rate", "lower", "predictions a group swap flips"),
    _rate("nlp_counterfactual_max_score_gap", "counterfactual score gap", "lower", "largest score change"),
    _rate("nlp_demographic_parity_gap", "demographic parity gap", "lower", "positive-rate gap between groups"),
    _rate("nlp_equalized_odds_gap", "equalized odds gap", "lower", "error-rate gap between groups"),
    _rate("mm.min_agreement", "lowest invariance agreement", "higher", "worst agreement over perturbations"),
    _rate("mm.clean_accuracy", "multimodal clean accuracy", "higher", "accuracy before perturbation"),
    _rate("mm.cross_modal.joint_only_rate", "joint-only breakage", "lower",
          "inputs broken only by perturbing modalities together"),
    _rate("mm.mismatch.detection_rate", "mismatch detection rate", "higher", "mismatched pairs caught"),
    _rate("mm.mismatch.false_alarm_rate", "mismatch false alarms", "lower", "matched pairs flagged"),
    _rate("sanity_clean_acc", "sanity: clean accuracy", "higher", "gradient-masking check, clean inputs"),
    _rate("sanity_pgd_acc", "sanity: PGD accuracy", "higher", "gradient-masking check, under PGD"),
    MetricSpec("sanity_eps0_acc", "sanity: accuracy at eps 0", "higher", OTHER),
    MetricSpec("sanity_zero_gradient_fraction", "sanity: zero-gradient share", "lower", OTHER),
    MetricSpec("monitor_alerts", "monitor alerts on replay", "none", COUNT, lo=0.0, hi=None),
    MetricSpec("scan_files", "files scanned", "none", COUNT, lo=0.0, hi=None),
    MetricSpec("scan_bytes_read", "bytes scanned", "none", COUNT, lo=0.0, hi=None),
    MetricSpec("supply_files_checked", "files verified", "none", COUNT, lo=0.0, hi=None),
)
_PATTERNS: tuple[tuple[re.Pattern[str], MetricSpec], ...] = (
    (re.compile(r"^mm\.(cross_modal\.)?agreement\."), _rate("", "invariance agreement", "higher",
                                                            "predictions unchanged by the perturbation")),
    (re.compile(r"^mm\.accuracy\."), _rate("", "accuracy under perturbation", "higher", "")),
    (re.compile(r"^mm\.breaking_severity\."),
     MetricSpec("", "breaking severity", "higher", SECURITY, lo=0.0, hi=None, relative=True,
                tolerance=RELATIVE_TOLERANCE, gate=True, meaning="smallest perturbation strength that breaks")),
    (re.compile(r"^poisoning_.*_acc_drop$"), _rate("", "accuracy drop under poisoning", "lower", "")),
    (re.compile(r"^poisoning_.*_backdoor_success$"), _rate("", "poisoning backdoor success", "lower", "")),
    (re.compile(r"^extraction_fidelity_"), _rate("", "extraction fidelity", "lower", "")),
    # Anything else a team records, by what its name says.
    (re.compile(r"(_seconds|_secs|_s|_ms|_time|latency)$"),
     MetricSpec("", "", "lower", TIMING, relative=True, tolerance=RELATIVE_TOLERANCE, lo=0.0, hi=None)),
    (re.compile(r"(attempts|requests|files|bytes|hits|count|checked|_n)$"),
     MetricSpec("", "", "none", COUNT, lo=0.0, hi=None)),
    (re.compile(r"(success|asr|flip|gap|leak|fidelity|auc|drop|false_alarm|outlier).*(rate|fraction)?$"),
     _rate("", "", "lower", "")),
    (re.compile(r"(acc|accuracy|agreement|robust|detection_rate)"), _rate("", "", "higher", "")),
)
_BY_NAME = {spec.name: spec for spec in _EXACT}


@functools.lru_cache(maxsize=4096)
def builtin_spec(name: str) -> MetricSpec:
    """The built-in reading of metric ``name``; an unknown name has no direction and is not gated."""
    if name in _BY_NAME:
        return _BY_NAME[name]
    for pattern, spec in _PATTERNS:
        if pattern.search(name):
            return replace(spec, name=name, label=spec.label or name.replace("_", " "))
    return MetricSpec(name, name.replace("_", " "), "none", OTHER, lo=None, hi=None)


@dataclass(frozen=True)
class MetricCatalog:
    """The built-in specs with a team's overrides (``[tool.aisp.dashboard.metrics.NAME]``)."""

    overrides: Mapping[str, MetricSpec] = field(default_factory=dict)

    def spec(self, name: str) -> MetricSpec:
        if name in self.overrides:
            return self.overrides[name]
        return builtin_spec(name)


DEFAULT_CATALOG = MetricCatalog()


def catalog_from_config(table: Mapping[str, Any]) -> MetricCatalog:
    """A catalog from ``[tool.aisp.dashboard.metrics]``; ``AispError`` naming a bad entry."""
    overrides: dict[str, MetricSpec] = {}
    for name, values in table.items():
        if not isinstance(values, Mapping):
            raise AispError(f"[tool.aisp.dashboard.metrics] {name} must be a table such as "
                            f'{{ better = "higher", tolerance = 0.02 }}')
        base = builtin_spec(str(name))
        changes: dict[str, Any] = {}
        unknown = set(values) - {"better", "tolerance", "gate", "range", "label", "relative"}
        if unknown:
            raise AispError(f"[tool.aisp.dashboard.metrics.{name}] has unknown keys {sorted(unknown)}; "
                            "allowed: better, tolerance, relative, gate, range, label")
        if "better" in values:
            if values["better"] not in DIRECTIONS:
                raise AispError(f"[tool.aisp.dashboard.metrics.{name}] better must be one of "
                                f"{', '.join(DIRECTIONS)}, got {values['better']!r}")
            changes["better"] = values["better"]
        if "tolerance" in values:
            tolerance = values["tolerance"]
            if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or tolerance < 0:
                raise AispError(f"[tool.aisp.dashboard.metrics.{name}] tolerance must be a number >= 0")
            changes["tolerance"] = float(tolerance)
        for key in ("gate", "relative"):
            if key in values:
                if not isinstance(values[key], bool):
                    raise AispError(f"[tool.aisp.dashboard.metrics.{name}] {key} must be true or false")
                changes[key] = values[key]
        if "range" in values:
            bounds = values["range"]
            if (not isinstance(bounds, (list, tuple)) or len(bounds) != 2
                    or not all(b is None or isinstance(b, (int, float)) for b in bounds)):
                raise AispError(f"[tool.aisp.dashboard.metrics.{name}] range must be [low, high]")
            changes["lo"], changes["hi"] = (None if b is None else float(b) for b in bounds)
        if "label" in values:
            changes["label"] = str(values["label"])
        if changes.get("gate") and base.kind == OTHER:
            changes["kind"] = SECURITY
        overrides[str(name)] = replace(base, **changes)
    return MetricCatalog(overrides)
