"""A real model's transcripts, labelled by hand, replayed offline through the detectors.

``fixtures/llm/labelled/smollm2-labelled.json`` holds SmolLM2-135M-Instruct's answers to every probe
family (recorded by ``fixtures/llm/record_real_model.py``), each conversation labelled with what a careful
reader says it shows. The detectors must agree with the labels except on the cases listed, with a note,
in the file's ``known_disagreements``; the per-family counts are the ones docs/llm.md reports. A detector
change that breaks a labelled case, or fixes a listed one, fails here until the labels or docs follow.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import record_real_model  # fixtures/llm is on the path (conftest.py)

LABELLED = Path(record_real_model.__file__).parent / "labelled" / "smollm2-labelled.json"


@pytest.fixture(scope="module")
def labelled() -> dict:
    return json.loads(LABELLED.read_text("utf-8"))


def test_every_conversation_is_labelled(labelled) -> None:
    families = {entry["family"] for entry in labelled["attempts"]}
    assert families == {"injection", "jailbreak", "encoding", "system-prompt-leak", "data-leak",
                        "cross-session-leak", "insecure-output"}
    for entry in labelled["attempts"]:
        for role in ("attack", "control"):
            assert isinstance(entry[role]["label"], bool), (entry["probe"], entry["attempt"], role)
        assert isinstance(entry["leak_label"], bool)


def test_detectors_agree_with_the_labels_but_for_the_known_cases(labelled) -> None:
    known = {item["case"]: item["why"] for item in labelled["known_disagreements"]}
    found = record_real_model.disagreements(labelled)
    assert sorted(found) == sorted(known), "detector verdicts changed on labelled transcripts"


def test_precision_and_recall_are_the_documented_ones(labelled) -> None:
    assert record_real_model.confusion(labelled) == labelled["summary"]
    docs = (Path(__file__).resolve().parents[2] / "docs" / "llm.md").read_text("utf-8")
    for family, row in labelled["summary"].items():
        assert f"| {family} | {row['tp']} | {row['fp']} | {row['fn']} | {row['tn']} |" in docs, family


GARAK_LABELLED = LABELLED.parent / "smollm2-garak-labelled.json"


def _garak_confusion(entries: list[dict], verdict) -> dict[str, int]:
    row = {"tp": 0, "fp": 0, "fn": 0, "tn": 0}
    for entry in entries:
        said, truth = verdict(entry), entry["label"]
        row[("t" if said == truth else "f") + ("p" if said else "n")] += 1
    return row


def _bridge(entry: dict) -> bool:
    from pytest_aisp.llm.garak_bridge import hit_stands

    return entry["garak_hit"] and hit_stands(entry["prompt"], entry["output"], entry["triggers"])


def test_garak_on_the_same_model_against_the_labels() -> None:
    # garak's own detectors and the bridge's reading of them, on the same endpoint, same labels' rules.
    data = json.loads(GARAK_LABELLED.read_text("utf-8"))
    docs = (Path(__file__).resolve().parents[2] / "docs" / "llm.md").read_text("utf-8")
    for probe in sorted({e["probe"].split(".")[0] for e in data["attempts"]}):
        entries = [e for e in data["attempts"] if e["probe"].split(".")[0] == probe]
        for name, verdict in (("garak", lambda e: e["garak_hit"]), ("bridge", _bridge)):
            row = _garak_confusion(entries, verdict)
            assert row == data["summary"][f"{probe} {name}"], (probe, name)
            assert f"| {probe} ({name}) | {row['tp']} | {row['fp']} | {row['fn']} | {row['tn']} |" in docs
