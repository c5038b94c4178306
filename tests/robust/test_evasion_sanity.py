"""Sanity checks: gradient masking, eps=0, zero gradients, non-monotone curves."""

from __future__ import annotations

import pytest

from pytest_aisp.findings import RobustnessFailure
from pytest_aisp.robust import assert_no_gradient_masking, evaluate_gradient_masking, robustness_curve
from pytest_aisp.robust.sanity import RULE_EPS0_MISMATCH, RULE_GRADIENT_MASKING, RULE_ZERO_GRADIENT

torch = pytest.importorskip("torch")


class Quantised(torch.nn.Module):
    """The digits model behind input rounding: its gradient is zero almost everywhere."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(torch.round(x * 4) / 4)


class Noisy(torch.nn.Module):
    """A model that is random in eval mode: eps=0 cannot reproduce the clean run."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        logits = self.inner(x)
        return logits + 8.0 * torch.randn(logits.shape, generator=torch.Generator().manual_seed(self.calls))


def test_a_plain_model_passes_the_sanity_checks(digits_mlp):
    x, y = digits_mlp.x[:200], digits_mlp.y[:200]
    result = assert_no_gradient_masking(digits_mlp.module, (x, y), eps=0.05, square_steps=100)
    assert result.findings == ()
    assert result.metrics["eps0_acc"] == result.metrics["clean_acc"]
    assert result.metrics["pgd_acc"] <= result.metrics["square_acc"]


def test_gradient_masking_is_found(digits_mlp):
    masked = Quantised(digits_mlp.module).eval()
    x, y = digits_mlp.x[:200], digits_mlp.y[:200]
    result = evaluate_gradient_masking(masked, (x, y), eps=0.15, square_steps=100)
    rules = {f.rule_id for f in result.findings}
    assert RULE_GRADIENT_MASKING in rules and RULE_ZERO_GRADIENT in rules
    assert result.metrics["zero_gradient_fraction"] > 0.9
    with pytest.raises(RobustnessFailure, match="not sound"):
        assert_no_gradient_masking(masked, (x, y), eps=0.15, square_steps=100)


def test_a_random_model_fails_the_eps_zero_check(digits_mlp):
    noisy = Noisy(digits_mlp.module).eval()
    data = (digits_mlp.x[:100], digits_mlp.y[:100])
    result = evaluate_gradient_masking(noisy, data, eps=0.05, square_steps=20)
    assert RULE_EPS0_MISMATCH in {f.rule_id for f in result.findings}


class Periodic(torch.nn.Module):
    """A binary model whose class flips every 0.08 of mean input: fooled in bands of eps."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        phase = torch.cos(x.flatten(1).mean(dim=1) * torch.pi / 0.08)
        return torch.stack([phase, -phase], dim=1)


def test_curve_attaches_its_plot_and_flags_non_monotone_results(digits_mlp):
    from pytest_aisp.recorder import recording

    model = Periodic()
    x = digits_mlp.x
    with torch.no_grad():
        y = model(torch.from_numpy(x)).argmax(1).numpy()
    with recording("t::curve") as record:
        curve = robustness_curve(model, (x, y), eps=[0.04, 0.08, 0.12], attack="fgsm")
    assert curve.png.startswith(b"\x89PNG")
    assert any(a.title.startswith("robustness curve") for a in record.attachments)
    assert curve.findings and curve.findings[0].rule_id == "AISP-ROBUST-NON-MONOTONE"
    assert any(a < b for a, b in zip(curve.raw_accuracy, curve.raw_accuracy[1:]))
    assert all(a >= b for a, b in zip(curve.accuracy, curve.accuracy[1:]))
