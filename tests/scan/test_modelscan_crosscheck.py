"""Optional cross-check against modelscan (extra ``modelscan``): where the two differ, recorded.

Ours must flag every file modelscan flags, and must not pass a file modelscan flags as malicious.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_aisp.scan import scan_artifact


def test_ours_covers_every_modelscan_detection(corpus_dir: Path, labels: list[dict],
                                              record_property: pytest.RecordProperty) -> None:
    modelscan = pytest.importorskip("modelscan.modelscan")
    differences = []
    for sample in labels:
        path = corpus_dir / sample["name"]
        theirs = bool(modelscan.ModelScan().scan(str(path))["summary"]["total_issues"])
        ours = not scan_artifact(path).ok
        if theirs != ours:
            differences.append({"file": sample["name"], "label": sample["label"], "ours": ours,
                                "modelscan": theirs})
    (corpus_dir / "modelscan-differences.json").write_text(json.dumps(differences, indent=1))
    record_property("modelscan_differences", len(differences))
    assert not [d for d in differences if d["modelscan"] and not d["ours"]], differences
    assert all(d["label"] == "malicious" for d in differences), differences
