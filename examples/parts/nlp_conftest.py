# --- NLP: real text classifiers made by fixtures/nlp/make_models.py (seeded, about a second) ---
import importlib.util
import sys
from pathlib import Path

import pytest


def _nlp_make_models():
    """fixtures/nlp/make_models.py, found from this file upwards."""
    for folder in Path(__file__).resolve().parents:
        script = folder / "fixtures" / "nlp" / "make_models.py"
        if script.is_file():
            spec = importlib.util.spec_from_file_location("aisp_nlp_make_models", script)
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
            return module
    raise FileNotFoundError("fixtures/nlp/make_models.py not found above " + str(Path(__file__).parent))


@pytest.fixture(scope="session")
def nlp_models():
    return _nlp_make_models()


@pytest.fixture(scope="session")
def sentiment_classifier(nlp_models):
    """The team's sentiment model: TF-IDF + logistic regression."""
    return nlp_models.sentiment_model()


@pytest.fixture(scope="session")
def sentiment_eval_set(nlp_models):
    """Held-out labelled review sentences."""
    return nlp_models.sentiment_test_set(40)
