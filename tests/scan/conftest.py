"""Session fixtures for the scan tests: the labelled corpus, built once by fixtures/scan/make_corpus.py."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures" / "scan"
GENERATED = FIXTURES / "generated"


def _corpus_module():
    if str(FIXTURES) not in sys.path:
        sys.path.insert(0, str(FIXTURES))
    import make_corpus

    return make_corpus


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The corpus folder (benign/, malicious/, markers/, labels.json), rebuilt when the script changes.

    Built into a private folder and renamed into place, so xdist workers never see half a corpus.
    """
    make_corpus = _corpus_module()
    digest = hashlib.sha256((FIXTURES / "make_corpus.py").read_bytes()).hexdigest()[:12]
    target = GENERATED / f"corpus-{digest}"
    if (target / "labels.json").is_file():
        return target
    GENERATED.mkdir(parents=True, exist_ok=True)
    building = GENERATED / f"building-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # payloads name their marker files by absolute path: keep markers in a folder that stays put
        make_corpus.build_corpus(building, markers=GENERATED / "markers")
    try:
        os.rename(building, target)
    except OSError:
        shutil.rmtree(building, ignore_errors=True)  # another worker finished first
    return target


@pytest.fixture(scope="session")
def labels(corpus_dir: Path) -> list[dict]:
    return json.loads((corpus_dir / "labels.json").read_text())


@pytest.fixture(scope="session")
def make_corpus():
    return _corpus_module()
