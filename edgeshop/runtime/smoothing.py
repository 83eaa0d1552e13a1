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

Events (``Smoothed.event``) report what happened on the shelf, not every flicker of the
stable label: a product swap is ONE event ``A -> B`` even when the stable label passes
through "unknown" on the way; ``A -> None`` (the slot emptied) is reported only once the
slot has had no stable label for ``settle`` seconds, and a product back within that time
(a hand in front of it) is no event at all. ``settle=0`` reports every change at once.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

METHODS = ("ema", "vote")


SETTLE_SECONDS = 1.0  # default: how long a slot must stay empty before "A -> None" is an event


@dataclass(frozen=True)
class SlotEvent:
    """What changed on the shelf: the product ``before`` was replaced by ``after`` (None: no product)."""

    before: str | None
    after: str | None
    score: float  # the smoothed score of ``after`` (0 when None)
    timestamp: float  # when the event was decided (the update's timestamp)

    def as_json(self) -> dict:
        """The event's fields of edgeshop's event lines (docs/cameras.md: "Events")."""
        return {"from": self.before, "to": self.after, "score": round(self.score, 4),
                "timestamp": round(self.timestamp, 3)}


@dataclass(frozen=True)
class Smoothed:
    label: str | None  # the stable label, None while unknown
    score: float  # its smoothed score (0 when unknown)
    changed: bool  # the stable label changed with this frame
    previous: str | None  # the stable label before this frame
    event: SlotEvent | None = None  # a change to report with this frame (module docstring)


def check_settings(method: str = "ema", alpha: float = 0.3, window: int = 5, enter: float = 0.6,
                   exit: float = 0.4, settle: float = SETTLE_SECONDS) -> None:
    """Raise ValueError naming the first unusable smoothing setting (commands check flags with it)."""
    if method not in METHODS:
        raise ValueError(f"smoothing method must be one of {METHODS}, got {method!r}")
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if not 0 <= exit <= enter <= 1:
        raise ValueError(f"need 0 <= exit <= enter <= 1, got enter={enter}, exit={exit}")
    if not (isinstance(settle, (int, float)) and math.isfinite(settle) and settle >= 0):
        raise ValueError(f"settle must be a number of seconds >= 0, got {settle!r}")


class Smoother:
    """Stable labels and shelf events from one slot's per-frame scores (module docstring)."""

    def __init__(self, labels: Sequence[str], method: str = "ema", alpha: float = 0.3, window: int = 5,
                 enter: float = 0.6, exit: float = 0.4, settle: float = SETTLE_SECONDS) -> None:
        check_settings(method, alpha, window, enter, exit, settle)
        self.labels = list(labels)
        self.method, self.alpha, self.enter, self.exit, self.settle = method, alpha, enter, exit, settle
        self._votes: deque[int] = deque(maxlen=window)
        self.reset()

    def reset(self) -> None:
        self._votes.clear()
        self._ema: np.ndarray | None = None
        self._stable: int | None = None
        self._reported: int | None = None  # the label the last event reported
        self._empty_since: float | None = None  # when the stable label was lost, while not yet reported

    @property
    def scores(self) -> np.ndarray:
        """The current smoothed score per label."""
        if self.method == "ema":
            return self._ema if self._ema is not None else np.zeros(len(self.labels), np.float32)
        votes = np.asarray(self._votes, dtype=np.int64)
        counts = np.bincount(votes[votes >= 0], minlength=len(self.labels))  # -1: a vote for no product
        return (counts / max(len(self._votes), 1)).astype(np.float32)

    def update(self, scores: np.ndarray, unknown: bool = False, timestamp: float | None = None) -> Smoothed:
        """Add one frame's scores; ``unknown``: the classifier found it is none of the products.

        ``timestamp`` (seconds; a video's ``Frame.timestamp``) times the settle period;
        None takes the clock (right for live cameras, not for a video read faster than
        it plays)."""
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
        score = 0.0 if self._stable is None else float(smoothed[self._stable])
        now = time.monotonic() if timestamp is None else float(timestamp)
        return Smoothed(
            label=label,
            score=score,
            changed=self._stable != before,
            previous=None if before is None else self.labels[before],
            event=self._event(label, score, now),
        )

    def _event(self, label: str | None, score: float, now: float) -> SlotEvent | None:
        """The event this frame completes, if any: a new product at once, "no product"
        only after ``settle`` seconds without a stable label."""
        if self._stable == self._reported:
            self._empty_since = None  # back to what was reported (or still it): nothing happened
            return None
        if self._stable is None:
            if self._empty_since is None:
                self._empty_since = now
            if now - self._empty_since < self.settle:
                return None
        before = None if self._reported is None else self.labels[self._reported]
        self._reported, self._empty_since = self._stable, None
        return SlotEvent(before, label, score, now)
