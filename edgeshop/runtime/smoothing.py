"""Temporal smoothing: stable labels from noisy per-frame scores.

Two smoothers of the score vector:
- ``ema``: exponential moving average, s = alpha * scores + (1 - alpha) * s;
- ``vote``: the share of the last ``window`` frames whose top-1 was each label.

On top, hysteresis: a label becomes the stable label only when its smoothed score
reaches ``enter``, and stays until its score falls below ``exit`` (then the slot is
"unknown", None) or another label reaches ``enter`` and beats it. With enter > exit a
label hovering around one threshold does not flicker.

A frame the classifier marks unknown (``update(scores, unknown=True)``) counts as evidence
for no product: a zero score vector for ``ema``, a vote for nothing for ``vote``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

METHODS = ("ema", "vote")


@dataclass(frozen=True)
class Smoothed:
    label: str | None  # the stable label, None while unknown
    score: float  # its smoothed score (0 when unknown)
    changed: bool  # the stable label changed with this frame
    previous: str | None  # the stable label before this frame


def check_settings(method: str = "ema", alpha: float = 0.3, window: int = 5, enter: float = 0.6,
                   exit: float = 0.4) -> None:
    """Raise ValueError naming the first unusable smoothing setting (commands check flags with it)."""
    if method not in METHODS:
        raise ValueError(f"smoothing method must be one of {METHODS}, got {method!r}")
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if not 0 <= exit <= enter <= 1:
        raise ValueError(f"need 0 <= exit <= enter <= 1, got enter={enter}, exit={exit}")


class Smoother:
    def __init__(self, labels: Sequence[str], method: str = "ema", alpha: float = 0.3, window: int = 5,
                 enter: float = 0.6, exit: float = 0.4) -> None:
        check_settings(method, alpha, window, enter, exit)
        self.labels = list(labels)
        self.method, self.alpha, self.enter, self.exit = method, alpha, enter, exit
        self._votes: deque[int] = deque(maxlen=window)
        self._ema: np.ndarray | None = None
        self._stable: int | None = None

    def reset(self) -> None:
        self._votes.clear()
        self._ema = None
        self._stable = None

    @property
    def scores(self) -> np.ndarray:
        """The current smoothed score per label."""
        if self.method == "ema":
            return self._ema if self._ema is not None else np.zeros(len(self.labels), np.float32)
        votes = np.asarray(self._votes, dtype=np.int64)
        counts = np.bincount(votes[votes >= 0], minlength=len(self.labels))  # -1: a vote for no product
        return (counts / max(len(self._votes), 1)).astype(np.float32)

    def update(self, scores: np.ndarray, unknown: bool = False) -> Smoothed:
        """Add one frame's scores; ``unknown``: the classifier found it is none of the products."""
        scores = np.asarray(scores, dtype=np.float32)
        if scores.shape != (len(self.labels),):
            raise ValueError(f"expected {len(self.labels)} scores, got shape {scores.shape}")
        if unknown:
            scores = np.zeros_like(scores)
        if self.method == "ema":
            self._ema = scores.copy() if self._ema is None else self.alpha * scores + (1 - self.alpha) * self._ema
        else:
            self._votes.append(-1 if unknown else int(np.argmax(scores)))
        smoothed = self.scores
        top = int(np.argmax(smoothed))
        before = self._stable
        if self._stable is None:
            if smoothed[top] >= self.enter:
                self._stable = top
        elif top != self._stable and smoothed[top] >= self.enter and smoothed[top] > smoothed[self._stable]:
            self._stable = top
        elif smoothed[self._stable] < self.exit:
            self._stable = None
        label = None if self._stable is None else self.labels[self._stable]
        return Smoothed(
            label=label,
            score=0.0 if self._stable is None else float(smoothed[self._stable]),
            changed=self._stable != before,
            previous=None if before is None else self.labels[before],
        )
