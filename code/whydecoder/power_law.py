"""Power laws in model size: fit ``L(N) = L_inf + a (N / N_0)^-alpha`` to the sizes but
the largest, predict the largest, and say whether the prediction held (with a bootstrap
over seeds).

Explained in the chapter "Scale".
"""

from __future__ import annotations

import warnings

import numpy as np


def power_law(n, a, alpha, floor):
    """``floor + a * n ** -alpha`` with ``n`` in units of the smallest size. Defined in the
    chapter "Scale"."""
    return floor + a * np.power(n, -alpha)


def _power_law_jacobian(n, a, alpha, floor):
    """Derivatives of :func:`power_law` in ``(a, alpha, floor)``, one row per point.
    Defined in the chapter "Scale"."""
    term = np.power(n, -alpha)
    return np.stack([term, -a * term * np.log(n), np.ones_like(n)], axis=1)


def fit_power_law(n: list[float], loss: list[float], start: tuple[float, float, float] | None = None
                  ) -> tuple[float, float, float] | None:
    """Least-squares fit of ``L(N) = L_inf + a (N / N_0)^-alpha`` (``N_0`` the first N),
    ``(a, alpha, L_inf)``; ``None`` when it does not converge. Needs at least three points;
    ``start`` (a fit of nearby data) replaces the default starting point. Defined in the chapter "Scale"."""
    from scipy.optimize import OptimizeWarning, curve_fit

    if len(n) != len(loss) or len(n) < 3:
        raise ValueError(f"a power-law fit needs at least 3 (N, loss) points, got {len(n)} and {len(loss)}")
    x = np.asarray(n, dtype=float) / float(n[0])
    y = np.asarray(loss, dtype=float)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)  # a covariance we do not use
            high = [np.inf, 4.0, float(y.min())]
            p0 = (max(y[0] - y[-1], 1e-3) * 2, 0.3, max(y[-1] - 0.5, 0.0)) if start is None else \
                tuple(float(np.clip(v, 0.0, h)) for v, h in zip(start, high))
            p, _ = curve_fit(power_law, x, y, p0=p0, jac=_power_law_jacobian,
                             bounds=([0.0, 0.0, 0.0], high), maxfev=20000)
    except (RuntimeError, ValueError):
        return None
    return float(p[0]), float(p[1]), float(p[2])


def extrapolate(xs: list[float], losses: list[dict], replicates: int = 500, seed: int = 0) -> dict:
    """Fit the power law to the mean loss over seeds at every size but the last (sizes
    ``xs``, ``losses[i] = {seed: loss}``), predict the last, and bootstrap: seeds resampled
    within each size, the fit made again from the point fit. Returns the sizes and mean
    losses, the point fit, its prediction and error (predicted minus measured), and 95%
    percentile intervals of alpha and the error; ``converged`` is False when the point fit
    or half the replicates fail. Defined in the chapter "Scale"."""
    if len(xs) != len(losses) or len(xs) < 4:
        raise ValueError(f"extrapolating needs at least 4 sizes (3 to fit, 1 to predict), got {len(xs)} sizes and "
                         f"{len(losses)} loss sets")
    if any(not isinstance(v, dict) or not v for v in losses):
        raise ValueError("every size needs a non-empty {seed: loss} dict")
    rng = np.random.default_rng(seed)

    def mean(values):
        values = list(values)
        return sum(values) / len(values)

    def fit_and_predict(means, start=None):
        p = fit_power_law(xs[:-1], means[:-1], start)
        return None if p is None else (p, float(power_law(xs[-1] / xs[0], *p)) - means[-1])

    point = fit_and_predict([mean(v.values()) for v in losses])
    start = None if point is None else point[0]  # each replicate starts from the point fit
    alphas, errors = [], []
    for _ in range(replicates):
        means = [mean(rng.choice(list(v.values()), size=len(v))) for v in losses]
        got = fit_and_predict(means, start)
        if got is not None:
            alphas.append(got[0][1])
            errors.append(got[1])
    out = {"x": xs, "loss": [mean(v.values()) for v in losses], "converged": point is not None,
           "failed_share": 1 - len(errors) / replicates}
    if point is None or len(errors) < replicates // 2:
        return out | {"converged": False}
    (a, alpha, floor), error = point
    return out | {"a": a, "alpha": alpha, "floor": floor, "predicted": float(power_law(xs[-1] / xs[0], a, alpha, floor)),
                  "error": error, "alpha_interval": [float(np.percentile(alphas, 2.5)), float(np.percentile(alphas, 97.5))],
                  "error_interval": [float(np.percentile(errors, 2.5)), float(np.percentile(errors, 97.5))]}


def predictability(fit: dict, tolerance: float) -> str:
    """``"predictable"`` when the bootstrap interval of the extrapolation error lies inside
    ``(-tolerance, tolerance)``, ``"missed"`` when it lies wholly outside it, ``"unclear"``
    otherwise or when the fit did not converge. Defined in the chapter "Scale"."""
    if not fit.get("converged"):
        return "unclear"
    low, high = fit["error_interval"]
    if -tolerance < low and high < tolerance:
        return "predictable"
    if low >= tolerance or high <= -tolerance:
        return "missed"
    return "unclear"
