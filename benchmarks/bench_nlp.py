"""Native DeepWordBug vs TextAttack's DeepWordBugGao2018 on the same models, texts and query budget.

Run in the TextAttack environment: ``python benchmarks/bench_nlp.py [--quick]``. Rows: attack success
rate, model queries per attacked text, wall time; ours, TextAttack's, and the ratio (ours / theirs).
Without TextAttack installed, only the native numbers are printed.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _run(model, texts, labels, attack, budget):
    from pytest_aisp.nlp import TextConstraints, as_text_classifier, evaluate_text_robustness

    classifier = as_text_classifier(model)  # a fresh cache for each run
    # TextAttack's recipe caps only the total edit distance: lift our cap on changed words to match.
    constraints = TextConstraints(max_words_changed=1.0) if attack == "deepwordbug" else None
    started = time.perf_counter()
    result = evaluate_text_robustness(
        classifier, texts, labels, attack=attack, budget=budget, constraints=constraints
    )
    return result, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="40 texts, TF-IDF model only")
    parser.add_argument("--n", type=int, default=None, help="number of texts (default 200, 40 with --quick)")
    parser.add_argument("--budget", type=int, default=1000, help="model queries per text (default 1000)")
    args = parser.parse_args(argv)
    n = args.n or (40 if args.quick else 200)
    from tests.fixture_scripts import load_fixture_script  # the scripts the tests use

    make_models = load_fixture_script("nlp/make_models.py", "aisp_nlp_make_models")
    texts, labels = make_models.sentiment_test_set(n)
    models = {"tfidf-logreg": make_models.sentiment_model()}
    if not args.quick:
        models["vader"] = make_models.vader_model()
    have_textattack = importlib.util.find_spec("textattack") is not None
    if have_textattack:
        from pytest_aisp.nlp.textattack_bridge import offline_bootstrap

        offline_bootstrap()
        import textattack  # noqa: F401  (import time is not charged to either attack)
    print(
        f"# {n} texts, budget {args.budget} queries/text, "
        "DeepWordBug (native) vs DeepWordBugGao2018 (TextAttack)"
    )
    header = f"{'model':<14} {'metric':<22} {'ours':>10} {'textattack':>11} {'ratio':>8}"
    print(header)
    print("-" * len(header))
    for name, model in models.items():
        ours, ours_s = _run(model, texts, labels, "deepwordbug", args.budget)
        theirs, theirs_s = (
            _run(model, texts, labels, "textattack:DeepWordBugGao2018", args.budget)
            if have_textattack
            else (None, None)
        )
        rows = [
            ("clean accuracy", ours.clean_accuracy, theirs.clean_accuracy if theirs else None),
            ("attack success rate", ours.attack_success_rate, theirs.attack_success_rate if theirs else None),
            ("queries / example", ours.queries_per_example, theirs.queries_per_example if theirs else None),
            ("wall time (s)", ours_s, theirs_s),
        ]
        for metric, mine, anchor in rows:
            ratio = f"{mine / anchor:8.2f}" if anchor else f"{'-':>8}"
            anchor_text = f"{anchor:11.3f}" if anchor is not None else f"{'missing':>11}"
            print(f"{name:<14} {metric:<22} {mine:10.3f} {anchor_text} {ratio}")
        if theirs:
            gap = abs(ours.attack_success_rate - theirs.attack_success_rate) * 100
            print(f"{name:<14} {'success-rate gap (pts)':<22} {gap:10.1f}")
            print(f"{name:<14} {'speed-up (theirs/ours)':<22} {theirs_s / ours_s:10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
