"""TextAttack behind the native API: ``attack="textattack:<Recipe>"``.

TextAttack downloads NLTK data on its first import and ships without the homoglyph file some
transformations open. :func:`offline_bootstrap` lays out what the offline-capable recipes need from
local sources (the packaged stop words, the packaged WordNet 3.0, the packaged confusables table), so that
DeepWordBug, Pruthi and PWWS run with no network (InputReduction and BadCharacters run too, but do not
search for a label flip, so this bridge refuses them).
Recipes that need downloaded embeddings or models fail with an ``AispError`` naming what is missing.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np

from pytest_aisp.findings import AispError
from pytest_aisp.nlp import resources
from pytest_aisp.nlp.classifier import TextClassifier
from pytest_aisp.nlp.results import AdversarialText, build_result, character_diff, check_classes

# Recipes that run from the bootstrap alone (no embeddings, no language models).
OFFLINE_RECIPES = ("DeepWordBugGao2018", "Pruthi2019", "PWWSRen2019")
# Recipes that run offline but do not search for a label flip: their results do not fit this API.
NOT_LABEL_FLIP = {
    "InputReductionFeng2018": "it removes words while keeping the label (input reduction), not a label flip",
    "BadCharacters2021": "it needs a targeted goal function; use the native homoglyphs and invisible attacks",
}
TA_POST_INSTALL_MARKER = "post_install_check_3"
HOMOGLYPH_FILE = "intentional_homoglyphs.txt"


def offline_bootstrap(
    folder: str | os.PathLike[str] | None = None, *, wordnet_path: str | None = None
) -> Path:
    """Prepare an offline TextAttack: an NLTK data folder, the post-install marker, the homoglyph file.

    ``folder`` (default ``<cache>/textattack-nltk``) receives ``corpora/stopwords/english`` and a copy of
    WordNet as ``corpora/wordnet``; it is put on NLTK's path (and ``NLTK_DATA``). Returns the folder.
    Call before importing TextAttack; :func:`run_textattack` calls it itself.
    """
    root = Path(folder) if folder is not None else resources.cache_dir() / "textattack-nltk"
    stopwords_file = root / "corpora" / "stopwords" / "english"
    stopwords_file.parent.mkdir(parents=True, exist_ok=True)
    if not stopwords_file.exists():
        stopwords_file.write_text("\n".join(sorted(resources.stopwords())) + "\n", encoding="utf-8")
    resources.assemble_wordnet(root / "corpora" / "wordnet", resources.wordnet_source(wordnet_path))
    paths = [p for p in os.environ.get("NLTK_DATA", "").split(os.pathsep) if p]
    if str(root) not in paths:
        os.environ["NLTK_DATA"] = os.pathsep.join([str(root), *paths])
    try:
        import nltk
        import nltk.data

        if str(root) not in nltk.data.path:
            nltk.data.path.insert(0, str(root))
        # TextAttack calls nltk.download (e.g. "omw-1.4" for WordNet swaps); nothing is fetched at run time
        nltk.download = _refuse_download
    except ImportError:
        pass
    # No hub downloads from transformers or datasets while TextAttack runs.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    ta_cache = Path(os.environ.get("TA_CACHE_DIR", os.path.expanduser("~/.cache/textattack")))
    ta_cache.mkdir(parents=True, exist_ok=True)
    # TextAttack's first import downloads NLTK packages unless this marker exists; the folder above
    # provides what the offline recipes read instead.
    (ta_cache / TA_POST_INSTALL_MARKER).touch()
    _install_homoglyph_file()
    return root


def _refuse_download(*args: Any, **kwargs: Any) -> bool:
    """Stands in for ``nltk.download``: what the offline recipes read is already laid out locally."""
    return False


def _install_homoglyph_file() -> None:
    """Write TextAttack's missing ``shared/intentional_homoglyphs.txt`` from the packaged confusables."""
    import importlib.util

    spec = importlib.util.find_spec("textattack")
    if spec is None or not spec.submodule_search_locations:
        return
    target = Path(next(iter(spec.submodule_search_locations))) / "shared" / HOMOGLYPH_FILE
    if target.exists():
        return
    lines = [
        "# Written by pytest-aisp from Unicode TR39 confusables.txt (via its packaged confusables table),",
        "# in the layout of Unicode's intentional.txt: source ; target # ( s → t ) names",
    ]
    for source, glyphs in resources.confusables().items():
        for glyph in glyphs:
            lines.append(f"{ord(source):04X} ;\t{ord(glyph):04X}\t#* ( {source} → {glyph} ) confusable")
    try:
        target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    except OSError as exc:
        raise AispError(f"cannot write {target} (TextAttack's missing homoglyph file): {exc}") from exc


def _recipe_class(textattack: Any, name: str) -> Any:
    if name in NOT_LABEL_FLIP:
        raise AispError(f"TextAttack recipe {name} is not supported here: {NOT_LABEL_FLIP[name]}")
    recipe = getattr(textattack.attack_recipes, name, None)
    if recipe is None:
        known = sorted(n for n in dir(textattack.attack_recipes) if n[:1].isupper() and n != "AttackRecipe")
        raise AispError(
            f"TextAttack has no recipe {name!r}; offline-capable: {', '.join(OFFLINE_RECIPES)}; "
            f"all: {', '.join(known)}"
        )
    return recipe


def build_textattack_attack(classifier: TextClassifier, recipe: str, budget: int) -> Any:
    """A TextAttack ``Attack`` for ``recipe`` against ``classifier``, with a query budget per text."""
    offline_bootstrap()
    from pytest_aisp.backends import require

    textattack = require(
        "textattack", "textattack", "TextAttack lives in its own environment (tox -e textattack)"
    )
    from textattack.models.wrappers import ModelWrapper

    class _Wrapper(ModelWrapper):  # type: ignore[misc]
        def __init__(self, model: TextClassifier) -> None:
            self.model = model

        def __call__(self, text_inputs: list[str]) -> np.ndarray:
            return self.model(list(text_inputs))

        def get_grad(self, text_input: str) -> Any:
            raise AispError(
                "gradient-based TextAttack recipes need a model with gradients, not a text classifier"
            )

        def _tokenize(self, inputs: list[str]) -> list[list[str]]:
            return [text.split() for text in inputs]

    recipe_class = _recipe_class(textattack, recipe)
    try:
        attack = recipe_class.build(_Wrapper(classifier))
    except (OSError, LookupError, ValueError) as exc:  # a download that could not happen, in various forms
        raise AispError(
            f"TextAttack recipe {recipe} could not be built offline ({type(exc).__name__}: "
            f"{str(exc)[:300]}); it needs downloaded embeddings or models. Recipes that run offline: "
            f"{', '.join(OFFLINE_RECIPES)}"
        ) from exc
    attack.goal_function.query_budget = budget
    attack.goal_function.batch_size = classifier.batch_size
    return attack


def run_textattack(
    classifier: TextClassifier, texts: list[str], labels: list[int], *, recipe: str, budget: int, seed: int
) -> Any:
    """Run a TextAttack recipe over the texts; return a result without findings (the caller adds them)."""

    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:  # pragma: no cover - TextAttack depends on torch
        pass
    attack = build_textattack_attack(classifier, recipe, budget)
    from textattack.attack_results import FailedAttackResult, SkippedAttackResult, SuccessfulAttackResult

    started = time.perf_counter()
    clean = classifier.predict(texts)
    check_classes(classifier, labels)
    examples: list[AdversarialText] = []
    n_correct = 0
    query_counts = []
    for index, (text, label) in enumerate(zip(texts, labels)):
        if clean[index] != label:
            continue
        n_correct += 1
        outcome = attack.attack(text, label)
        if isinstance(outcome, SkippedAttackResult):  # TextAttack's own check disagrees with ours: count it
            query_counts.append(0)
            continue
        query_counts.append(int(outcome.perturbed_result.num_queries))
        if isinstance(outcome, SuccessfulAttackResult):
            adversarial = outcome.perturbed_result.attacked_text.text
            changed = len(
                outcome.original_result.attacked_text.all_words_diff(outcome.perturbed_result.attacked_text)
            )
            examples.append(
                AdversarialText(
                    index=index,
                    original=text,
                    adversarial=adversarial,
                    label=label,
                    adversarial_label=int(outcome.perturbed_result.output),
                    words_changed=changed,
                    queries=int(outcome.perturbed_result.num_queries),
                    diff=character_diff(text, adversarial),
                )
            )
        elif not isinstance(outcome, FailedAttackResult):  # e.g. MaximizedAttackResult: not a success
            continue
    return build_result(
        attack=f"textattack:{recipe}",
        classifier=classifier.name,
        n_texts=len(texts),
        n_correct=n_correct,
        examples=examples,
        query_counts=query_counts,
        budget=budget,
        seconds=time.perf_counter() - started,
    )
