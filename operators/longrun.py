"""Long-run statistics for sequential tests on dependent samples.

The pieces :class:`~operators.changes.ChangeDetector` is built from, each a
plain function: the CUSUM threshold for a false-alarm budget, how much wider
than one sample's spread the long-run spread may be given what has been seen,
a chi-square bound for a variance known from few effective samples, and where
in an excursion a change began.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

__all__ = ["chi2_lower", "cusum_threshold", "long_run_factor", "median", "onset_index",
           "persistence", "sample_sd"]


@lru_cache(maxsize=256)  # every new stream asks with the same few settings
def cusum_threshold(k: float, arl0: float) -> float:
    """The threshold ``h`` (in standard deviations) at which a one-sided CUSUM with
    reference ``k`` runs ``arl0`` samples between false alarms on average.

    Siegmund's approximation ``ARL0 = (exp(2kh) - 1 - 2kh) / (2k^2)``, solved
    by bisection; without his 1.166 overshoot correction, which only lengthens
    the run, so the threshold errs on the quiet side.

    >>> round(cusum_threshold(0.5, 10_000), 2)
    8.52
    """
    def arl(h: float) -> float:
        a = 2 * k * h
        return (math.exp(a) - 1 - a) / (2 * k * k)
    lo, hi = 0.0, 1.0
    while arl(hi) < arl0:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if arl(mid) < arl0 else (lo, mid)
    return hi


def chi2_lower(dof: float, z: float) -> float:
    """A lower bound of ``chi2(dof) / dof`` at ``z`` standard normal deviations
    (Wilson-Hilferty), never below 0.001: how much smaller a variance known from
    ``dof`` degrees of freedom may be than its estimate suggests.

    >>> round(chi2_lower(100, 2.0), 2), round(chi2_lower(1, 3.0), 3)
    (0.74, 0.001)
    """
    c = 2 / (9 * max(dof, 1e-9))
    return max(1 - c - z * math.sqrt(c), 0.1) ** 3


def long_run_factor(rho: float, n: int) -> float:
    """How much wider than one sample's sd the long-run sd may be, from ``n`` samples
    with lag-1 autocorrelation ``rho``, erring wide.

    ``sqrt((1 + r) / (1 - r))`` with ``r`` an upper bound of ``rho`` (bias-corrected,
    plus one standard error, never below 0: negative dependence would shrink the
    scale), over the 3-sigma lower bound of a variance known from the ``n_eff = n
    (1 - r) / (1 + r)`` effective samples: a young or slow stream has seen little
    of its own wander, and is judged as such.

    >>> round(long_run_factor(0.0, 5_000), 2), round(long_run_factor(0.95, 5_000), 1)
    (1.05, 8.2)
    """
    upper = rho + (1 + 3 * abs(rho)) / n + math.sqrt(max(1 - rho * rho, 0.0) / n)
    upper = min(max(upper, 0.0), 0.995)
    n_eff = n * (1 - upper) / (1 + upper)
    return math.sqrt((1 + upper) / (1 - upper) / chi2_lower(n_eff, 3.0))


def persistence(var: float, c1: float, c2: float, rho: float, n: int) -> float:
    """The lag-1 autocorrelation an AR(1) stream would need to wander as far, in the long
    run, as one with variance ``var`` and lag-1 and lag-2 autocovariances ``c1``, ``c2``
    does; ``rho`` (``c1 / var``) when nothing says more.

    A slow wander under fast noise (a loop's traffic level under its count's noise, a
    temperature under its sensor's) decays from lag 1 to lag 2 by the wander's own
    ``phi = c2 / c1``, far slower than ``rho`` says: the noise takes its share at lag 0
    only. As an AR(1) wander (variance ``c1 / phi``) plus white noise (the rest), its
    long-run variance is ``noise + wander (1 + phi) / (1 - phi)``; the ``rho`` whose
    ``(1 + rho) / (1 - rho)`` is that over ``var`` is returned, so
    :func:`long_run_factor` bounds it as it does any other. Pure AR(1) gives ``phi ==
    rho``, and ``rho`` back; so do a lag-1 or lag-2 autocorrelation within 3 standard
    errors of 0 from ``n`` samples (white noise has no wander to model) and a ``phi``
    within 2 standard errors of ``rho`` (an AR(1) stream's own estimates).

    >>> round(persistence(1.0, 0.5, 0.25, 0.5, 1_000), 3)      # AR(1), rho 0.5
    0.5
    >>> round(persistence(1.0, 0.5, 0.495, 0.5, 1_000), 2)     # a wander under noise
    0.98
    >>> persistence(1.0, 0.05, 0.049, 0.05, 1_000)             # noise: nothing to model
    0.05
    """
    root_n = math.sqrt(max(n, 1))
    least = 3 * var / root_n
    if c1 < least or c2 < least:
        return rho
    phi = min(c2 / c1, 0.999)
    # phi estimates rho on a pure AR(1) stream, give or take its standard error
    if phi - rho <= 2 * math.sqrt(max(1 - rho * rho, 0.0)) / (max(rho, 1e-9) * root_n):
        return rho
    wander = c1 / phi
    ratio = ((var - wander) + wander * (1 + phi) / (1 - phi)) / var
    return (ratio - 1) / (ratio + 1)


def onset_index(sums: Sequence[float]) -> int:
    """Which of an excursion's blocks (their sums, signed so the change is positive)
    the change began in.

    The CUSUM's last zero is where a change of twice its reference would most
    likely have begun; a larger change is placed by the same argument with its own
    estimated size (half the mean since the onset), refined up to three times.

    >>> onset_index([0.1, -0.3, 0.2, 3.1, 2.9, 3.0])
    3
    """
    start = 0
    for _ in range(3):
        half = sum(sums[start:]) / (len(sums) - start) / 2
        best, acc, arg = -math.inf, 0.0, start
        for j in range(len(sums) - 1, -1, -1):
            acc += sums[j] - half
            if acc > best:
                best, arg = acc, j
        if arg == start:
            break
        start = arg
    return start


def sample_sd(values: Sequence[float]) -> float:
    """The sample standard deviation (0 for fewer than two values)."""
    n = len(values)
    if n < 2:
        return 0.0
    mean = sum(values) / n
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def median(values: Sequence[float]) -> float:
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2
