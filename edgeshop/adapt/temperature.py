"""Temperature scaling (Guo et al., ICML 2017) on logits.

scores = softmax(beta * logits) with beta = 1 / T. One number, fitted by minimising the
negative log-likelihood of the true labels; it rescales every image's logits alike, so
it never changes which class scores highest. numpy only.
"""

from __future__ import annotations

import numpy as np

# Search range of beta. Above 10 a few hundred validation images cannot tell one value
# from another (a separable set drives the fit to the bound); below 0.1 nothing is left.
BETA_RANGE = (0.1, 10.0)


def softmax(logits: np.ndarray, beta: float = 1.0) -> np.ndarray:
    z = beta * np.asarray(logits, dtype=np.float64)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def negative_log_likelihood(logits: np.ndarray, truth: np.ndarray, beta: float = 1.0) -> float:
    """Mean -log softmax(beta * logits)[true class]."""
    z = beta * np.asarray(logits, dtype=np.float64)
    top = z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z - top).sum(axis=1)) + top[:, 0]
    return float(np.mean(log_norm - z[np.arange(len(truth)), truth]))


def fit_beta(logits: np.ndarray, truth: np.ndarray, bounds: tuple[float, float] = BETA_RANGE) -> float:
    """The beta in ``bounds`` minimising the NLL (convex in beta: golden-section search on log beta)."""
    if len(truth) == 0:
        raise ValueError("fitting a temperature needs at least one labelled image")
    low, high = np.log(bounds[0]), np.log(bounds[1])
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    fa, fb = (negative_log_likelihood(logits, truth, np.exp(x)) for x in (a, b))
    while high - low > 1e-5:
        if fa < fb:
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = negative_log_likelihood(logits, truth, np.exp(a))
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = negative_log_likelihood(logits, truth, np.exp(b))
    return float(np.exp((low + high) / 2.0))
