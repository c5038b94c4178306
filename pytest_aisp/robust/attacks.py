"""Native torch evasion attacks: fgsm, pgd (Linf/L2), apgd-ce, square (black-box) and a noise baseline.

Every attack takes a batch ``x`` with its ``labels`` (the true classes, or the target classes when
``goal.targeted``), runs on the batch's device and returns adversarial inputs that stay within ``eps``
of ``x`` in the chosen norm and inside ``[lower, upper]``. Points the attack has already fooled leave
the batch, so later steps cost less. The functions are pure: the model is called, never changed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pytest_aisp.findings import AispError

ScoreFn = Callable[[Any], Any]  # torch batch -> (batch, classes) scores

ATTACKS: tuple[str, ...] = ("fgsm", "pgd", "apgd-ce", "square", "noise")
GRADIENT_ATTACKS: frozenset[str] = frozenset({"fgsm", "pgd", "apgd-ce"})
NORMS: tuple[str, ...] = ("inf", "2")
SCHEDULES: tuple[str, ...] = ("constant", "cosine", "step")
DEFAULT_STEPS: dict[str, int] = {"fgsm": 1, "pgd": 20, "apgd-ce": 50, "square": 500, "noise": 20}


@dataclass(frozen=True)
class Goal:
    """What the attacker wants: any wrong class (untargeted) or the given class (targeted).

    ``probabilities`` says the model returns probabilities, not logits, so the loss takes their log.
    """

    targeted: bool = False
    probabilities: bool = False

    def objective(self, scores: Any, labels: Any) -> Any:
        """Per-sample value the attacker maximises: cross-entropy to the true class, or minus
        cross-entropy to the target class."""
        import torch.nn.functional as F

        if self.probabilities:
            loss = F.nll_loss(scores.clamp_min(1e-12).log(), labels, reduction="none")
        else:
            loss = F.cross_entropy(scores, labels, reduction="none")
        return -loss if self.targeted else loss

    def margin(self, scores: Any, labels: Any) -> Any:
        """Per-sample margin that is negative once the attacker has won (for score-based attacks)."""
        import torch

        own = scores.gather(1, labels[:, None])[:, 0]
        others = scores.clone()
        others.scatter_(1, labels[:, None], -torch.inf)
        best_other = others.max(dim=1).values
        return best_other - own if self.targeted else own - best_other

    def reached(self, scores: Any, labels: Any) -> Any:
        """Per-sample bool: the attacker has won on this point."""
        predicted = scores.argmax(dim=1)
        return predicted == labels if self.targeted else predicted != labels


@dataclass(frozen=True)
class Ball:
    """The threat model: an ``eps`` ball in ``norm`` around ``x``, intersected with the input box."""

    x: Any
    eps: float
    norm: str
    lower: Any
    upper: Any
    # Linf: the ball and box as one per-feature interval, so projecting is two element-wise ops
    # (set in __post_init__; None for L2).
    low: Any = field(default=None, init=False, repr=False, compare=False)
    high: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.norm == "inf":
            import torch

            # lower <= x <= upper (the caller widens the box around clean inputs outside it), so low <= high.
            object.__setattr__(self, "low", torch.maximum(self.x - self.eps, self.lower))
            object.__setattr__(self, "high", torch.minimum(self.x + self.eps, self.upper))

    def subset(self, index: Any) -> Ball:
        # Bounds shared by every point have a leading dimension of 1 and need no copy.
        lower = self.lower if self.lower.shape[0] == 1 else self.lower[index]
        upper = self.upper if self.upper.shape[0] == 1 else self.upper[index]
        return Ball(self.x[index], self.eps, self.norm, lower, upper)

    def project(self, x_adv: Any) -> Any:
        """The closest point of the ball and box to ``x_adv`` (exact for Linf, a feasible point for L2)."""
        import torch

        if self.norm == "inf":
            return torch.minimum(torch.maximum(x_adv, self.low), self.high)
        delta = x_adv - self.x
        norms = _flat_norm(delta)
        delta = delta * _expand((self.eps / norms.clamp_min(1e-12)).clamp(max=1.0), delta)
        return torch.minimum(torch.maximum(self.x + delta, self.lower), self.upper)

    def random_start(self, generator: Any) -> Any:
        """A point drawn uniformly from the ball (then put inside the box)."""
        import torch

        x = self.x
        if self.norm == "inf":
            uniform = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            noise = (uniform * 2 - 1) * self.eps
        else:
            direction = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            direction = direction / _expand(_flat_norm(direction).clamp_min(1e-12), direction)
            dims = x[0].numel()
            radius = torch.rand(len(x), generator=generator, device=x.device, dtype=x.dtype) ** (1.0 / dims)
            noise = direction * _expand(radius * self.eps, direction)
        return self.project(x + noise)

    def step(self, x_adv: Any, gradient: Any, size: Any) -> Any:
        """One ascent step of ``size`` (scalar or per-sample) along the norm's steepest direction."""
        if self.norm == "inf":
            direction = gradient.sign()
        else:
            direction = gradient / _expand(_flat_norm(gradient).clamp_min(1e-12), gradient)
        if isinstance(size, float):
            return self.project(x_adv.add(direction, alpha=size))
        return self.project(x_adv + _expand(size, direction) * direction)

    def finish(self, x_adv: Any) -> Any:
        """Project once more and remove float rounding, so every point is within eps and the box."""
        import torch

        x_adv = self.project(x_adv.detach())
        if self.norm == "inf":
            # x + delta rounds in float32: step the few that land past eps back towards x.
            over = (x_adv.double() - self.x.double()).abs() > self.eps
            if bool(over.any()):
                x_adv = torch.where(over, torch.nextafter(x_adv, self.x), x_adv)
        else:
            norms = _flat_norm(x_adv.double() - self.x.double())
            over = norms > self.eps
            if bool(over.any()):
                scale = _expand((self.eps / norms).clamp(max=1.0).to(x_adv.dtype) * (1 - 1e-6), x_adv)
                x_adv = self.x + (x_adv - self.x) * scale
                x_adv = torch.minimum(torch.maximum(x_adv, self.lower), self.upper)
        return x_adv


def _flat_norm(t: Any) -> Any:
    return t.flatten(1).norm(dim=1)


def _expand(per_sample: Any, like: Any) -> Any:
    return per_sample.reshape((-1,) + (1,) * (like.dim() - 1))


def step_sizes(schedule: str, base: float, steps: int) -> list[float]:
    """The step size at each step: constant, cosine decay to 0, or halved at 50% and 75% of the steps."""
    if schedule == "constant":
        return [base] * steps
    if schedule == "cosine":
        return [base * 0.5 * (1 + math.cos(math.pi * t / steps)) for t in range(steps)]
    if schedule == "step":
        return [base * (0.5 if t >= steps // 2 else 1.0) * (0.5 if t >= 3 * steps // 4 else 1.0)
                for t in range(steps)]
    raise AispError(f"unknown step schedule {schedule!r}; use one of {', '.join(SCHEDULES)}")


def _gradient(scores: ScoreFn, goal: Goal, x_adv: Any, labels: Any) -> tuple[Any, Any, Any]:
    """Scores, per-sample objective and its gradient at ``x_adv``."""
    import torch

    x_adv = x_adv.detach().requires_grad_(True)
    with torch.enable_grad():
        out = scores(x_adv)
        value = goal.objective(out, labels)
        (gradient,) = torch.autograd.grad(value.sum(), x_adv)
    return out.detach(), value.detach(), gradient


def fgsm(scores: ScoreFn, ball: Ball, labels: Any, goal: Goal) -> Any:
    """Fast gradient (sign) method: one step of size eps."""
    _, _, gradient = _gradient(scores, goal, ball.x, labels)
    return ball.finish(ball.step(ball.x, gradient, float(ball.eps)))


def pgd(scores: ScoreFn, ball: Ball, labels: Any, goal: Goal, *, steps: int, step_size: float | None = None,
        restarts: int = 1, random_start: bool = True, schedule: str = "constant",
        generator: Any = None) -> Any:
    """Projected gradient descent (Madry et al.): ``steps`` projected steps per restart; a point
    fooled at any step of any restart keeps that adversarial input and stops being attacked."""
    import torch

    base = step_size if step_size is not None else 2.5 * ball.eps / max(steps, 1)
    sizes = step_sizes(schedule, base, steps)
    result = ball.x.clone()
    remaining = torch.arange(len(ball.x), device=ball.x.device)
    for restart in range(max(restarts, 1)):
        if len(remaining) == 0:
            break
        sub, sub_labels = ball.subset(remaining), labels[remaining]
        x_adv = sub.random_start(generator) if random_start or restart > 0 else sub.x.clone()
        done = torch.zeros(len(remaining), dtype=torch.bool, device=ball.x.device)
        for size in sizes:
            out, _, gradient = _gradient(scores, goal, x_adv, sub_labels)
            won = goal.reached(out, sub_labels) & ~done
            if bool(won.any()):
                result[remaining[won]] = x_adv[won]
                done |= won
                # Fooled points leave the batch once they are an eighth of it: compacting costs copies.
                if 8 * int(done.sum()) >= len(done):
                    keep = ~done
                    remaining, sub, sub_labels = remaining[keep], sub.subset(keep), sub_labels[keep]
                    x_adv, gradient, done = x_adv[keep], gradient[keep], done[keep]
                    if len(remaining) == 0:
                        break
            x_adv = sub.step(x_adv, gradient, size)
        if len(remaining):
            with torch.no_grad():
                won = goal.reached(scores(x_adv), sub_labels) & ~done
            result[remaining[won]] = x_adv[won]
            done |= won
            # Keep the last iterate of points never fooled: the strongest attempt there is.
            if restart == max(restarts, 1) - 1:
                result[remaining[~done]] = x_adv[~done]
            remaining = remaining[~done]
    return ball.finish(result)


def _apgd_checkpoints(steps: int) -> list[int]:
    """Iterations where APGD checks its progress (Croce & Hein 2020, section 3.2)."""
    fractions = [0.0, 0.22]
    while fractions[-1] < 1.0:
        fractions.append(fractions[-1] + max(fractions[-1] - fractions[-2] - 0.03, 0.06))
    return sorted({math.ceil(f * steps) for f in fractions[1:] if math.ceil(f * steps) < steps})


def apgd_ce(scores: ScoreFn, ball: Ball, labels: Any, goal: Goal, *, steps: int, restarts: int = 1,
            generator: Any = None, rho: float = 0.75, momentum: float = 0.75) -> Any:
    """APGD with cross-entropy (Croce & Hein 2020): momentum steps, and a per-point step size that
    halves (restarting from the best point) when progress stalls between checkpoints."""
    import torch

    result = ball.x.clone()
    remaining = torch.arange(len(ball.x), device=ball.x.device)
    checkpoints = set(_apgd_checkpoints(steps))
    for _ in range(max(restarts, 1)):
        if len(remaining) == 0:
            break
        sub, sub_labels = ball.subset(remaining), labels[remaining]
        n = len(remaining)
        eta = torch.full((n,), 2.0 * ball.eps, device=ball.x.device, dtype=ball.x.dtype)
        x_adv = sub.random_start(generator)
        out, value, gradient = _gradient(scores, goal, x_adv, sub_labels)
        best_value, best_x, previous_value = value.clone(), x_adv.clone(), value.clone()
        won_any = goal.reached(out, sub_labels)
        found = torch.where(_expand(won_any, x_adv), x_adv, sub.x)
        x_prev = x_adv.clone()
        x_adv = sub.step(x_adv, gradient, eta)
        increases = torch.zeros(n, device=ball.x.device)
        last_check, eta_at_check, best_at_check = 0, eta.clone(), best_value.clone()
        for k in range(1, steps):
            out, value, gradient = _gradient(scores, goal, x_adv, sub_labels)
            won = goal.reached(out, sub_labels) & ~won_any
            found = torch.where(_expand(won, x_adv), x_adv, found)
            won_any |= won
            if bool(won_any.all()):
                break
            # Progress is counted against the previous iterate (the paper's condition 1).
            increases += (value > previous_value).float()
            previous_value = value
            improved = value > best_value
            best_value = torch.where(improved, value, best_value)
            best_x = torch.where(_expand(improved, x_adv), x_adv, best_x)
            if k in checkpoints:
                too_few = increases < rho * (k - last_check)
                stalled = (eta == eta_at_check) & (best_value == best_at_check)
                halve = too_few | stalled
                eta_at_check, best_at_check = eta.clone(), best_value.clone()
                eta = torch.where(halve, eta / 2, eta)
                x_adv = torch.where(_expand(halve, x_adv), best_x, x_adv)
                if bool(halve.any()):
                    out, value, gradient = _gradient(scores, goal, x_adv, sub_labels)
                    previous_value = value
                increases.zero_()
                last_check = k
            z = sub.step(x_adv, gradient, eta)
            x_next = sub.project(x_adv + momentum * (z - x_adv) + (1 - momentum) * (x_adv - x_prev))
            x_prev, x_adv = x_adv, x_next
        with torch.no_grad():
            won = goal.reached(scores(x_adv), sub_labels) & ~won_any
        found = torch.where(_expand(won, x_adv), x_adv, found)
        won_any |= won
        found = torch.where(_expand(won_any, x_adv), found, best_x)
        result[remaining] = found
        remaining = remaining[~won_any]
    return ball.finish(result)


def _square_side(p: float, height: int, width: int) -> tuple[int, int]:
    """Window height and width covering about a fraction ``p`` of a ``height x width`` plane."""
    if height == 1:
        return 1, max(1, min(width - 1 if width > 1 else 1, round(p * width)))
    side = max(1, min(min(height, width) - 1, round(math.sqrt(p * height * width))))
    return side, side


def _square_fraction(p_init: float, step: int, steps: int) -> float:
    """Andriushchenko et al.'s schedule: the window shrinks at fixed fractions of 10 000 queries."""
    scaled = int(step / max(steps, 1) * 10000)
    halvings = sum(scaled > mark for mark in (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000))
    return p_init / (2 ** halvings)


def square(scores: ScoreFn, ball: Ball, labels: Any, goal: Goal, *, steps: int, generator: Any = None,
           p_init: float = 0.05) -> Any:
    """Square Attack (Andriushchenko et al. 2020), Linf, score-based: random square updates at the
    corners of the ball, kept when they lower the margin. One model query per step and point."""
    import torch

    if ball.norm != "inf":
        raise AispError("square is implemented for norm='inf'; use pgd or noise for L2")
    x = ball.x
    planes = x.reshape(len(x), -1, x.shape[-2], x.shape[-1]) if x.dim() >= 3 else x.reshape(len(x), 1, 1, -1)
    _, channels, height, width = planes.shape
    as_planes = lambda t: t.reshape(planes.shape)  # noqa: E731 - a view helper, local on purpose

    def evaluate(candidate: Any, index: Any) -> tuple[Any, Any]:
        with torch.no_grad():
            out = scores(candidate.reshape((len(candidate), *x.shape[1:])))
        return goal.margin(out, labels[index]), goal.reached(out, labels[index])

    # Start from vertical stripes of +-eps (the paper's initialisation).
    signs = torch.randint(0, 2, (len(x), channels, 1, width), generator=generator, device=x.device) * 2 - 1
    x_best = as_planes(ball.project((planes + ball.eps * signs.to(x.dtype)).reshape(x.shape)))
    everyone = torch.arange(len(x), device=x.device)
    margin, won = evaluate(x_best, everyone)
    lower_p, upper_p = as_planes(ball.lower.expand_as(x)), as_planes(ball.upper.expand_as(x))
    x_p = planes
    for step in range(steps):
        active = (~won).nonzero()[:, 0]
        if len(active) == 0:
            break
        rows, cols = _square_side(_square_fraction(p_init, step, steps), height, width)
        n = len(active)
        top = torch.randint(0, height - rows + 1, (n,), generator=generator, device=x.device)
        left = torch.randint(0, width - cols + 1, (n,), generator=generator, device=x.device)
        values = (torch.randint(0, 2, (n, channels, 1, 1), generator=generator, device=x.device) * 2 - 1)
        candidate = x_best[active].clone()
        row_index = top[:, None] + torch.arange(rows, device=x.device)[None, :]
        col_index = left[:, None] + torch.arange(cols, device=x.device)[None, :]
        window = torch.zeros((n, 1, height, width), dtype=torch.bool, device=x.device)
        sample_index = torch.arange(n, device=x.device)[:, None, None]
        window[sample_index, 0, row_index[:, :, None], col_index[:, None, :]] = True
        proposal = x_p[active] + ball.eps * values.to(x.dtype)
        candidate = torch.where(window, proposal, candidate)
        candidate = torch.minimum(torch.maximum(candidate, lower_p[active]), upper_p[active])
        new_margin, new_won = evaluate(candidate, active)
        better = new_margin < margin[active]
        x_best[active[better]] = candidate[better]
        margin[active[better]] = new_margin[better]
        won[active[better & new_won]] = True
    return ball.finish(x_best.reshape(x.shape))


def noise(scores: ScoreFn, ball: Ball, labels: Any, goal: Goal, *, steps: int, generator: Any = None) -> Any:
    """Random points drawn uniformly from the ball, ``steps`` draws per point: the baseline every
    real attack must beat."""
    import torch

    result = ball.x.clone()
    remaining = torch.arange(len(ball.x), device=ball.x.device)
    for _ in range(max(steps, 1)):
        if len(remaining) == 0:
            break
        sub = ball.subset(remaining)
        candidate = sub.random_start(generator)
        with torch.no_grad():
            won = goal.reached(scores(candidate), labels[remaining])
        result[remaining[won]] = candidate[won]
        remaining = remaining[~won]
    return ball.finish(result)


def run_attack(name: str, scores: ScoreFn, ball: Ball, labels: Any, goal: Goal, *, steps: int,
               step_size: float | None = None, restarts: int = 1, random_start: bool = True,
               schedule: str = "constant", generator: Any = None, **options: Any) -> Any:
    """Dispatch to the attack called ``name``; see :data:`ATTACKS`."""
    if name == "fgsm":
        return fgsm(scores, ball, labels, goal)
    if name == "pgd":
        return pgd(scores, ball, labels, goal, steps=steps, step_size=step_size, restarts=restarts,
                   random_start=random_start, schedule=schedule, generator=generator)
    if name == "apgd-ce":
        return apgd_ce(scores, ball, labels, goal, steps=steps, restarts=restarts, generator=generator,
                       **options)
    if name == "square":
        return square(scores, ball, labels, goal, steps=steps, generator=generator, **options)
    if name == "noise":
        return noise(scores, ball, labels, goal, steps=steps, generator=generator)
    raise AispError(f"unknown attack {name!r}; use one of {', '.join(ATTACKS)} or 'art:<ART attack class>'")
