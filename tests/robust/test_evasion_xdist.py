"""Under xdist each worker gets its device and the numbers do not change."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("xdist")
pytest.importorskip("torch")


@pytest.mark.slow  # starts two fresh interpreters that each import torch
def test_two_workers_give_the_same_numbers_as_one_process(pytester, robust_models, digits_mlp):
    from pytest_aisp.robust import evaluate_robustness

    files = robust_models["digits_mlp"]
    out = pytester.path / "out"
    out.mkdir()
    pytester.makepyfile(f"""
        import json, os
        import numpy as np
        import pytest
        import torch
        from pytest_aisp.robust import evaluate_robustness

        torch.set_num_threads(1)
        MODEL = torch.jit.load({str(files["torchscript"])!r})
        DATA = tuple(np.load({str(files["data"])!r})[k] for k in ("x", "y"))

        @pytest.mark.parametrize("eps", [0.05, 0.1])
        def test_attack(aisp_device, eps):
            result = evaluate_robustness(MODEL, DATA, attack="pgd", eps=eps, steps=10, seed=3,
                                         device=aisp_device)
            worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
            with open(os.path.join({str(out)!r}, f"{{eps}}.json"), "w") as fh:
                json.dump({{"worker": worker, "device": aisp_device, "robust_acc": result.robust_acc}}, fh)
    """)
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    runs = {path.stem: json.loads(path.read_text()) for path in out.glob("*.json")}
    assert {r["worker"] for r in runs.values()} <= {"gw0", "gw1"}
    for eps in (0.05, 0.1):
        expected = evaluate_robustness(digits_mlp.module, digits_mlp.data, attack="pgd", eps=eps, steps=10,
                                       seed=3)
        assert runs[str(eps)]["robust_acc"] == expected.robust_acc
        assert runs[str(eps)]["device"] in {"cpu", "cuda:0"}
