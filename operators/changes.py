"""Changes of level and spread in one autocorrelated, heavy-tailed stream.

A sequential test of our own, because river has none that fits: its detectors
(ADWIN, PageHinkley, KSWIN) judge a stream as if its samples were independent,
so on a sensor whose readings wander slowly they either alarm on every wander
or, once prewhitened, keep only ``1 - rho`` of a step and go blind. None of
them estimates when a change began. This one is a two-sided CUSUM whose scale
is the stream's *long-run* standard deviation, the one that governs a mean of
``n`` dependent samples (``sd * sqrt((1 + rho) / (1 - rho))`` for an AR(1)
signal): a change of level is judged against how far the level of such a
signal wanders by itself, and keeps its whole size.

* Robust: every deviation is clipped at ``clip`` standard deviations before it
  counts, so one spike is not a shift and heavy tails do not look like one.
* Baseline kept current: level, spread and lag-1 autocorrelation are learned
  from the first ``warmup`` samples (median and MAD), then updated per block
  (expanding, then exponential with ``memory`` samples) once no test's
  excursion holds the block, so a change in progress is not learned as normal.
* Honest about what it does not know yet: the long-run scale is an upper
  confidence bound for the samples seen (see :mod:`operators.longrun`; a slow
  wander under fast noise, whose lag-2 autocovariance says it decays far slower
  than its lag-1 autocorrelation does, is scaled as the wander it is; batch
  means take over where the AR(1) model still clearly underrates it), and
  the reference value adds two standard errors of the baseline mean, so a
  young stream is judged conservatively.
* Thresholds from the budget, not from data: ``h`` solves Siegmund's
  approximation of a CUSUM's in-control run length for the allowed false
  alarms per million samples (a tenth of it, split over the four one-sided
  tests: baselines learned online are not exact).
* Jumps: a stream whose level wanders for minutes (a temperature that follows a
  machine's duty cycle) has a long-run scale hundreds of times its short-run sd,
  and the CUSUM's reference is then wider than any step. Beside it, each block's
  median is compared with the median three blocks before, in units of how much
  such medians usually differ (their mean absolute difference, learned online):
  a step that holds for the two blocks after it beyond a threshold from the same
  budget is a level change at once, whatever the long-run scale. It runs where the
  CUSUM is blind: its reference at or beyond the clip, so no step adds to it, or so
  near it that a step takes longer to find than a block waits to be learned.
  Medians, so spikes in any block move nothing.
* Steps: where the CUSUM is blind, the largest one-sample difference of each
  block's readings is also judged once the samples after it are in. It is a step when
  the level holds (the median of the 8 samples after it is at least half the
  jump away from the median of the 8 before, the same way) and the jump is
  ``STEP_RECORD`` (4) times the
  largest such difference the stream has shown so far (its record), and beyond
  the jump test's threshold in the differences' usual sd. A stream that wanders
  fast by itself, or has heavy tails, raises its own record: the bar is what
  this stream does, not a normal quantile. A caller that takes a reference out
  of each reading (a fleet's common level) passes it as ``offset``: jumps are
  looked for in the readings, so the reference's own moves do not raise the
  record, and whether the level held is asked of what is tested, so a step the
  whole fleet took is not this stream's. A sensor offset on a temperature that
  follows a duty cycle (a 10 C step on differences of 0.3 C) is found with the
  next block; on near unit-root Student-t(3) streams the test added one alarm
  in 16 million samples.
* Held: the CUSUM counts each sample at most to the clip, so a level that leaves by
  a hundred sd takes it ``h / (clip - k)`` samples all the same (about 60 on a young
  stream): at one reading an hour, longer than a pipeline's flow stays at a quarter
  of its level. Beside it, per sample, ``HELD`` (4) samples in a row on one side, the
  nearest of them ``HELD_RECORD`` (4) times as far out as the stream has ever held 4
  in a row (and beyond the clip), are a level change at once. Held means the run
  stays out: each sample after the first keeps an AR(1) innovation of at least the
  innovations' sd pointing out, and the run's later half is no nearer than its first
  (a spike through a dependent stream dies away by ``rho`` a sample and is no
  level). The record is set by runs that ended without a change, so a move under way
  does not raise its own bar; the sd is widened by as much as the last block's
  innovations outspread the baseline's (a regime that began wider). On AR(1) and
  slow-wander streams with Gaussian or Student-t(3) innovations it added no false
  alarm in 48 million samples (``benchmarks/detection.py``).
* New regimes: a level change beyond the held test's bar (a pump that started, a
  flow that fell to nothing) need not keep the old spread: the spread and the jump
  and step tests' usual differences are then worth a warm-up's samples, a prior the
  samples after the move outweigh at once. A level set by any change is refined by
  the samples after it as their mean.
* Sensors in steps: a reading reported in steps of ``q`` (whole degrees) hides
  noise of sd ``q / sqrt(12)`` and repeats itself while its level sits inside a
  step. A warm-up in which the reading never changed goes on until it does; the
  baseline's spread is at least the steps' own, and the step and jump tests'
  differences at least ``q / sqrt(6)`` (the smallest step seen is ``q``); the
  lag-1 autocorrelation is measured on the variance less the steps' white noise
  (``q^2 / 12``); the spread is judged only where the sensor resolves it
  (``q / sqrt(6)`` under half the innovations' sd).
* Spread: the standard deviation of a block's AR(1) innovations about their
  mean, in its own CUSUM (innovations are close to independent, so
  prewhitening is right here; centring keeps a level step out of it). They are
  the reading's own, ``offset`` put back: a reference's noise is not the
  stream's spread (a median of peers gets noisier when some of them leave it).

Work per sample is a few float operations; the tests run per block of
``block`` samples.

>>> import random
>>> rng = random.Random(1)
>>> det, x, found = ChangeDetector(), 0.0, []
>>> for i in range(3_000):                      # AR(1), rho 0.85; +3 sd from 2,000
...     x = 0.85 * x + rng.gauss(0, 1)
...     change = det.update(x / 1.898 + (3.0 if i >= 2_000 else 0.0), event_ms=i)
...     if change:
...         found.append(change)
>>> c = found[0]
>>> c.kind, c.direction, 2_000 <= c.sample <= 2_300, abs(c.onset_sample - 2_000) < 60
('level', 'up', True, True)
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from dataclasses import dataclass
from statistics import NormalDist

from mypy_extensions import mypyc_attr

from operators.longrun import (
    chi2_lower,
    cusum_threshold,
    long_run_factor,
    median,
    onset_index,
    persistence,
    sample_sd,
)

__all__ = ["Change", "ChangeDetector"]

BATCH = 64  # samples per batch mean, for the measured long-run variance
# a step must be this many times the largest the stream has shown before (its record)
STEP_RECORD = 4.0
# an excursion is a level change once this many samples in a row are beyond
# HELD_RECORD times the largest such excursion the stream has shown (and the clip)
HELD = 4
HELD_RECORD = 4.0
SQRT6, SQRT12 = math.sqrt(6.0), math.sqrt(12.0)


@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True)
class Change:
    """One change found: what, which way, how large, since when, against what.

    ``magnitude`` is, for a level change, its size in the baseline's standard
    deviations; for a spread change, the innovations' spread ratio minus one.
    """

    kind: str            # "level" or "spread"
    direction: str       # "up" or "down"
    magnitude: float
    sample: int          # the sample that decided it (1-based count of the stream)
    onset_sample: int    # the first sample of the change, as estimated
    onset_ms: int        # its event time
    baseline_mean: float
    baseline_sd: float
    autocorrelation: float
    statistic: float
    threshold: float


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class ChangeDetector:
    """CUSUM on a stream's level and spread, scaled by its long-run variance.

    ``update(x, event_ms)`` returns a :class:`Change` when one is found. The
    baseline then moves to the new regime (the level to the mean since the
    onset, or the spread by the ratio found) and keeps what it knew of the
    stream's dependence, so one alarm does not throw away a long history.
    ``spread=False`` tests the level alone, for a stream whose spread is no
    property of anything (a median of different sources takes the noise of
    whichever source is in the middle). A stream's level is judged once it has
    ``young`` samples or ``young_ms`` of event time behind it, whichever comes
    first: a young stream has not shown how far its level wanders by itself,
    and a wander slower than what it has seen looks like a change (judged from
    its warm-up on, the detector alarmed on 10 to 60 of every million samples
    of a slow wander under noise; see benchmarks/RESULTS.md). A wander is a
    thing of time (a temperature's, a road's load), so a stream that reports
    every few minutes has shown it by its first reports.
    """

    __slots__ = (
        "_a_c1", "_a_k", "_a_mean", "_a_n", "_a_prev", "_a_scale", "_a_var", "_blocks", "_bm_acc",
        "_bm_fill", "_bm_n", "_bm_var", "_buf", "_c1", "_c2", "_clip", "_d_prev", "_d_prev2",
        "_e_hi", "_e_lo", "_first_ms", "_gn",
        "_gp", "_h_bar", "_h_first", "_h_hi", "_h_len", "_h_lo", "_h_peak", "_h_rec", "_h_sd",
        "_h_up", "_h_wide", "_h_xs", "_hl", "_hs", "_j_abs", "_j_n", "_j_z", "_jumps", "_k_raw",
        "_m2", "_ms_sn",
        "_ms_sp", "_mu", "_n", "_n_est", "_n_mu",
        "_need", "_offs", "_on_gn", "_on_gp", "_on_sn", "_on_sp", "_pending", "_r_prev", "_res",
        "_rho",
        "_s_abs", "_s_cand", "_s_hist", "_s_n", "_s_rec", "_scale",
        "_sd", "_sn", "_sp", "_start_ms", "_sum_sn", "_sum_sp", "_warm", "block", "clip",
        "k_level", "k_spread", "max_pending", "memory", "spread_after", "warmup",
        "young", "young_ms", "young_pending",
    )

    def __init__(self, warmup: int = 30, block: int = 16, memory: int = 5_000,
                 clip: float = 4.0, k_level: float = 0.15, k_spread: float = 0.5,
                 false_alarms_per_million: float = 1.0, spread: bool = True,
                 young: int = 1_000, young_ms: int = 100_000) -> None:
        if warmup < 10 or block < 1 or young < warmup:
            raise ValueError(f"warmup={warmup}, block={block}, young={young}: need warmup "
                             ">= 10, block >= 1, young >= warmup")
        self.warmup, self.block, self.memory, self.clip = warmup, block, memory, clip
        self.k_level, self.k_spread = k_level, k_spread
        # samples in the baseline before the spread is judged (never, with ``spread`` off)
        self.spread_after: float = 10 * warmup if spread else math.inf
        self.young, self.young_pending = young, max(1, 128 // block)
        self.young_ms = young_ms
        # A block waits until no excursion holds it, at most 1,024 samples.
        self.max_pending = max(1, 1_024 // block)
        # A tenth of the budget (the baseline is estimated, not known), over four tests.
        arl = 4e7 / max(false_alarms_per_million, 1e-9)
        self._hl = cusum_threshold(k_level, arl)                    # per sample
        self._hs = cusum_threshold(k_spread, arl / block)          # per block
        # the jump test: two-sided, per block, from the same tenth of the budget, twice
        # the normal quantile (its scale is estimated and real streams have heavy tails)
        tail = max(false_alarms_per_million, 1e-9) * 1e-7 * block / 2
        self._j_z = 2.0 * NormalDist().inv_cdf(1 - tail)
        self._jumps: deque[tuple[float, int]] = deque(maxlen=4)  # (median, first event ms)
        # the step test: the last two blocks' samples and first event times, where the
        # last block's largest one-sample difference was, the usual size of such
        # differences (median |difference| per block, averaged), and the largest
        # statistic the stream has shown (its record)
        self._s_hist: deque[tuple[list[float], list[float], int]] = deque(maxlen=2)
        self._s_cand = -1
        self._s_abs, self._s_n, self._s_rec = 0.0, 0, 0.0
        self._j_abs, self._j_n = 0.0, 0  # mean |difference| of block medians 3 apart
        self._res = 0.0  # the smallest step between two readings seen (a resolution)
        # the held test: the run of samples beyond the record's bounds (its last HELD,
        # which side, the first's event time), the record in sd and the bar it sets
        self._h_xs: deque[float] = deque(maxlen=HELD)
        self._h_up, self._h_first, self._h_len = False, 0, 0
        self._h_rec, self._h_bar, self._h_peak = 0.0, clip, 0.0
        # the sd runs are measured in: the baseline's, widened by as much as the last
        # block's innovations spread beyond the baseline's (a regime that just began
        # wider, whose level change kept the old spread)
        self._h_wide, self._h_sd = 1.0, 0.0
        self._h_hi, self._h_lo = math.inf, -math.inf
        self._n = 0  # samples taken before the buffer's
        # the baseline (level, second moment, lag-1 product, samples behind them) and
        # its derived scale; the spread statistic's baseline; batch means
        self._mu = self._m2 = self._c1 = self._c2 = self._sd = self._rho = 0.0
        self._scale = self._k_raw = self._clip = 0.0
        self._n_est = self._n_mu = self._a_n = self._bm_n = self._bm_fill = 0
        self._a_mean = self._a_var = self._a_c1 = self._a_prev = 0.0
        self._a_scale = self._a_k = self._e_hi = self._e_lo = self._bm_acc = self._bm_var = 0.0
        # the current block's samples, and the last deviation (clipped and not)
        self._buf: list[float] = []
        self._offs: list[float] = []  # what was taken out of each (a reference's level)
        self._d_prev = self._d_prev2 = self._r_prev = 0.0
        self._start_ms = self._blocks = self._first_ms = 0
        # the four one-sided tests: statistics, where their excursions began (and for
        # the spread's, its event time and the statistic's sum since)
        self._gp = self._gn = self._sp = self._sn = self._sum_sp = self._sum_sn = 0.0
        self._on_gp = self._on_gn = self._on_sp = self._on_sn = self._ms_sp = self._ms_sn = 0
        self._warm = True       # the buffer holds the warm-up's samples
        self._need = warmup     # samples the buffer takes before its work is done
        # blocks not yet learned: (last sample, sum, squares, lag-1 products, spread,
        # raw sum, first event time, lag-2 products)
        self._pending: deque[tuple[int, float, float, float, float, float, int, float]] = \
            deque()

    @property
    def watching(self) -> bool:
        """Whether the warm-up is over and changes are being looked for."""
        return not self._warm

    @property
    def baseline(self) -> tuple[float, float] | None:
        """The level and standard deviation judged normal now (``None`` in warm-up)."""
        return None if self._warm else (self._mu, self._sd)

    @property
    def jump_sd(self) -> float | None:
        """How far a block's median usually is from the median three blocks before (as a
        standard deviation), learned online; ``None`` until 16 such differences are in.

        Medians of 16 independent normal samples differ by about 0.44 sd:

        >>> import random
        >>> rng, det = random.Random(0), ChangeDetector()
        >>> for i in range(20_000):
        ...     _ = det.update(rng.gauss(0, 1), event_ms=i)
        >>> 0.35 < det.jump_sd < 0.5
        True
        """
        return self._j_abs * 1.2533 if self._j_n >= 16 else None

    @property
    def n(self) -> int:
        """Samples taken so far."""
        return self._n + len(self._buf)

    def update(self, x: float, event_ms: int, offset: float = 0.0) -> Change | None:
        """Take one sample; a :class:`Change` when this sample completes one.

        ``offset`` is what the caller took out of the reading to make ``x`` (a fleet's
        common level): the step test looks for jumps in the reading itself, so the
        reference's own moves are not taken for the stream's, and asks ``x`` whether
        the jump held. Samples wait in a buffer (the warm-up's, then each block's); the
        work is done when it is full, in local variables.
        """
        buf = self._buf
        if not buf:
            self._start_ms = event_ms
        buf.append(x)
        self._offs.append(offset)
        if x > self._h_hi or x < self._h_lo:
            change = self._held(x, event_ms)
            if change is not None:
                return change
        elif self._h_xs:
            self._held_end()
        if len(buf) < self._need:
            return None
        if self._warm:
            if len(buf) < self.young and not _varied(buf):
                # a warm-up in which the reading never changed has shown no scale (a
                # coarse sensor that sat on one step of its resolution): it goes on
                self._need += self.warmup
                return None
            self._n += len(buf)
            self._learn_warmup()
            return None
        self._n += len(buf)
        return self._close_block()

    # -- baseline ---------------------------------------------------------------

    def _learn_warmup(self) -> None:
        """Level and spread from the warm-up by median and MAD, dependence from the
        clipped deviations."""
        self._first_ms = self._start_ms
        xs = list(self._buf)
        last_off = self._offs[-1]
        self._buf.clear()
        self._offs.clear()
        n = len(xs)
        mu = median(xs)
        sd = 1.4826 * median([abs(v - mu) for v in xs])
        if sd <= 0:  # more than half the samples equal: fall back to the plain sd
            sd = sample_sd(xs)
        floor = max(abs(mu) * 1e-9, 1e-12)
        # a reading quantised to steps of q hides noise of sd q / sqrt(12) (Sheppard):
        # a spread learned below that, from a few steps, is the sensor's resolution, and
        # clipping at a few of it would keep the baseline from ever learning the rest
        self._res = _resolution(xs)
        sd = max(sd, floor, self._res / SQRT12)
        c = self.clip * sd
        devs = [min(max(v - mu, -c), c) for v in xs]
        self._mu, self._n_est, self._n_mu = mu, n, n
        self._bm_acc, self._bm_fill, self._bm_n, self._bm_var = 0.0, 0, 0, 0.0
        self._m2 = max(sum(d * d for d in devs) / n, floor * floor)
        self._c1 = sum(a * b for a, b in itertools.pairwise(devs)) / n
        self._c2 = sum(a * b for a, b in zip(devs, devs[2:], strict=False)) / n
        self._d_prev, self._d_prev2 = devs[-1], devs[-2]
        self._r_prev = xs[-1] - mu + last_off
        self._h_rec = _held_record([(v - mu) / sd for v in xs])
        self._warm, self._need = False, self.block
        self._refit()
        # The spread statistic: the sd of a block's AR(1) innovations about their mean.
        # Its baseline comes from the warm-up's blocks (their sd over the block size
        # when there are too few).
        rho, b = self._rho, self.block
        innov = [y - rho * x for x, y in itertools.pairwise(devs)]
        sds = [sample_sd(innov[i:i + b]) for i in range(0, len(innov) - b + 1, b)]
        a_mean = sum(sds) / len(sds)
        a_var = sample_sd(sds) ** 2 if len(sds) > 2 else a_mean * a_mean / b
        self._a_mean = max(a_mean, floor)
        self._a_var = max(a_var, a_mean * a_mean / (2 * b), floor * floor)
        self._a_c1, self._a_prev = 0.0, 0.0
        self._a_n = 1
        self._e_hi, self._e_lo = self.clip * self._a_mean, -self.clip * self._a_mean
        self._refit_spread()
        self._reset_tests()

    def _refit(self) -> None:
        """Scale, clip and reference of the level test from the baseline estimates."""
        n = self._n_est
        # never under what the sensor's steps hide (a reading that sits on one step for
        # a while teaches a spread of nothing)
        sd = self._sd = max(math.sqrt(self._m2), self._res / SQRT12)
        # the steps' own noise (q^2 / 12) is white: it adds to the variance, not to the
        # lag-1 covariance, and taken for the signal's it makes a wander look short
        signal = self._m2 - self._res * self._res / 12
        rho = min(max(self._c1 / signal, -0.99), 0.99) if signal > 0 else 0.99
        self._rho = max(rho, 0.0)
        scale = sd * long_run_factor(persistence(self._m2, self._c1, self._c2, rho, n), n)
        batches = self._bm_n
        if batches >= 4:
            # Batch means measure the long-run variance where the AR(1) model only
            # infers it. Where they say clearly more (a slow wander under fast noise,
            # which lag-1 dependence underrates), the model does not fit: take theirs,
            # at its own upper bound.
            measured = BATCH * self._bm_var
            modelled = self._m2 * (1 + self._rho) / (1 - self._rho)
            if measured > modelled * (1 + 2 * math.sqrt(2 / batches)):
                scale = max(scale, math.sqrt(measured / chi2_lower(batches, 2.0)))
        self._scale = scale
        self._k_raw = (self.k_level + 2 / math.sqrt(self._n_mu)) * self._scale
        self._clip = self.clip * sd
        self._held_bounds()

    def _held_bounds(self) -> None:
        """The held test's bar, and the bounds beyond which a sample may make a record
        or a change (the bar over HELD_RECORD, never under the clip's share of it)."""
        self._h_bar = max(self.clip, HELD_RECORD * self._h_rec)
        self._h_sd = self._sd * self._h_wide
        reach = self._h_bar / HELD_RECORD * self._h_sd
        self._h_hi, self._h_lo = self._mu + reach, self._mu - reach

    def _refit_spread(self) -> None:
        rho = min(max(self._a_c1 / self._a_var, -0.99), 0.99)
        self._a_scale = math.sqrt(self._a_var) * long_run_factor(rho, self._a_n)
        self._a_k = self.k_spread + 1 / math.sqrt(self._a_n)

    def _reset_tests(self) -> None:
        self._gp = self._gn = self._sp = self._sn = self._sum_sp = self._sum_sn = 0.0
        self._on_gp = self._on_gn = self._on_sp = self._on_sn = self.n + 1
        self._ms_sp = self._ms_sn = 0
        self._pending.clear()
        self._buf = []
        self._offs = []

    # -- tests, per block -------------------------------------------------------

    def _close_block(self) -> Change | None:
        b = self.block
        mu, clip, rho = self._mu, self._clip, self._rho
        d_prev, d_prev2, r_prev = self._d_prev, self._d_prev2, self._r_prev
        e_hi, e_lo = self._e_hi, self._e_lo
        s1 = s2 = s11 = s12 = a_acc = a_sq = raw = 0.0
        for x, off in zip(self._buf, self._offs):  # noqa: B905 - only a keyword-free zip compiles to a C loop
            r = x - mu
            d = clip if r > clip else -clip if r < -clip else r  # one spike is not a shift
            s1 += d
            s2 += d * d
            s11 += d * d_prev
            s12 += d * d_prev2
            d_prev2, d_prev = d_prev, d
            # innovations of the reading itself, the reference put back: a source's
            # spread is its own, and the reference's noise (a median of peers, which
            # grows when peers leave it) is not. Unclipped (a step moves their mean, which
            # the block's spread is taken about), clipped about the last block's mean.
            r += off
            e = r - rho * r_prev
            r_prev = r
            e = e_hi if e > e_hi else e_lo if e < e_lo else e
            a_acc += e
            a_sq += e * e
            raw += x
        xs, offs = self._buf, self._offs
        ordered = sorted(xs)
        self._buf, self._offs = [], []
        self._d_prev, self._d_prev2, self._r_prev = d_prev, d_prev2, r_prev
        blind = self._blind()
        if blind:  # the step test looks
            jump = self._step(xs, offs, self._start_ms)
            if jump is not None:
                return jump
        else:
            self._s_hist.clear()
        jump = self._jump((ordered[(b - 1) // 2] + ordered[b // 2]) / 2, blind)
        if jump is not None:
            return jump
        mean_e = a_acc / b  # a level step moves the innovations' mean, not their spread
        a = math.sqrt(max(a_sq / b - mean_e * mean_e, 0.0))
        wide = max(1.0, a / self._a_mean)
        if wide != self._h_wide:
            self._h_wide = wide
            self._held_bounds()
        # innovations are clipped too, about the last block's mean (a step moves it)
        reach = self.clip * self._a_mean
        self._e_hi, self._e_lo = mean_e + reach, mean_e - reach
        # the level test: a per-sample CUSUM's increments over the block, in long-run sd
        kb = b * self._k_raw
        up = (s1 - kb) / self._scale
        down = (-s1 - kb) / self._scale
        # the spread test: the sd of the block's innovations, in its own long-run sd;
        # innovations need the dependence, so it waits until that is known, and the
        # sensor must resolve them: a reading in steps of q has innovations of sd
        # q / sqrt(6) from its steps alone, and where that is half their spread or more,
        # their spread is whether a block crossed a step
        if self._n_est >= self.spread_after and self._res < 0.5 * SQRT6 * self._a_mean:
            z = (a - self._a_mean) / self._a_scale
            sp, sn = self._sp + z - self._a_k, self._sn - z - self._a_k
        else:
            sp = sn = 0.0
        # each one-sided test: its statistic, and where its excursion began (the next
        # sample while it is at zero); the spread's tests also sum the statistic since
        n, start_ms = self.n, self._start_ms
        gp, gn = self._gp + up, self._gn + down
        if gp <= 0:
            gp, self._on_gp = 0.0, n + 1
        elif self._gp == 0:
            self._on_gp = n - b + 1
        if gn <= 0:
            gn, self._on_gn = 0.0, n + 1
        elif self._gn == 0:
            self._on_gn = n - b + 1
        if sp <= 0:
            sp, self._on_sp, self._sum_sp = 0.0, n + 1, 0.0
        else:
            if self._sp == 0:
                self._on_sp, self._ms_sp, self._sum_sp = n - b + 1, start_ms, 0.0
            self._sum_sp += a
        if sn <= 0:
            sn, self._on_sn, self._sum_sn = 0.0, n + 1, 0.0
        else:
            if self._sn == 0:
                self._on_sn, self._ms_sn, self._sum_sn = n - b + 1, start_ms, 0.0
            self._sum_sn += a
        if n < self.young and start_ms - self._first_ms < self.young_ms and \
                (gp > self._hl or gn > self._hl):
            # a young stream has not shown how far its level wanders by itself: what it
            # sees is its normal (see the class docstring)
            gp, self._on_gp, gn, self._on_gn = 0.0, n + 1, 0.0, n + 1
        self._gp, self._gn, self._sp, self._sn = gp, gn, sp, sn
        pending = self._pending
        pending.append((n, s1, s2, s11, a, raw, start_ms, s12))
        if gp > self._hl or gn > self._hl or sp > self._hs or sn > self._hs:
            change = self._decide(a)
            self._reset_tests()
            return change
        # A block is learned once no test's excursion holds it: the data of a change
        # in progress never becomes the baseline it is judged against, even while the
        # test's statistic dips back to zero. It waits 1,024 samples at most, and a
        # young baseline (under ``young`` samples, or a level just moved) 128: it knows
        # too little to wait out an excursion.
        settled = min(self._on_gp, self._on_gn, self._on_sp, self._on_sn)
        wait = self.max_pending if self._n_est >= self.young and self._n_mu >= self.young \
            else self.young_pending
        learned = False
        while pending and (len(pending) > wait or pending[0][0] < settled):
            end, b1, b2, b11, ba, _, _, b12 = pending.popleft()
            self._learn_block(end, b1, b2, b11, ba, b12)
            learned = True
        # refitting costs more than the sums: an old baseline is refitted every 4 blocks
        self._blocks += 1
        if learned and (self._n_est < 1_000 or not self._blocks % 4):
            self._refit()
            self._refit_spread()
        return None

    def _held(self, x: float, event_ms: int) -> Change | None:
        """The held test on one sample beyond the record's bounds (see the module's
        docstring): HELD in a row on one side, the nearest of them this far out, make a
        record, or a level change when beyond the bar."""
        xs, up = self._h_xs, x > self._h_hi
        if xs and up != self._h_up:
            self._held_end()
        if not xs:
            self._h_up, self._h_first, self._h_len = up, event_ms, 0
        xs.append(x)
        self._h_len += 1
        if len(xs) < HELD:
            return None
        mu, sd = self._mu, self._h_sd
        held = (min(xs) - mu) / sd if up else (mu - max(xs)) / sd
        young = self.n < self.young and event_ms - self._first_ms < self.young_ms
        if held > self._h_bar and not young and self._holds(up):
            return self._excursion(held)
        if held > self._h_peak:
            self._h_peak = held
        return None

    def _holds(self, up: bool) -> bool:
        """Whether the run stays out rather than dying away: each sample after the first is
        at least an innovation's sd beyond what the stream's dependence carries over from
        the one before (its AR(1) innovation points out). A spike in a dependent stream
        decays by ``rho`` a sample and is no level; a level ``D`` out keeps innovations
        of ``(1 - rho) * D``. And, as ``rho`` is estimated, the run's later half is no
        nearer than its first half by more than two innovation sds."""
        mu, rho, least = self._mu, self._rho, self._a_mean
        prev = -1.0
        ds = [x - mu if up else mu - x for x in self._h_xs]
        for d in ds:
            if prev >= 0 and d - rho * prev < least:
                return False
            prev = d
        half = HELD // 2
        return sum(ds[half:]) / (HELD - half) >= sum(ds[:half]) / half - 2 * least

    def _held_end(self) -> None:
        """A run ended without a change: how far it held is the stream's own (a record
        is set by runs that ended, so a move under way does not raise its own bar)."""
        self._h_xs.clear()
        if self._h_peak > self._h_rec:
            self._h_rec = self._h_peak
            self._held_bounds()
        self._h_peak = 0.0

    def _excursion(self, held: float) -> Change:
        """A level change the held test found: the level moves to where the run holds
        now (its later half; the first samples may be the way there)."""
        xs = list(self._h_xs)
        level = sum(xs[HELD // 2:]) / (HELD - HELD // 2)
        n = self.n
        change = Change("level", "up" if self._h_up else "down", (level - self._mu) / self._sd,
                        n, n - self._h_len + 1, self._h_first, self._mu, self._sd,
                        self._rho, held, self._h_bar)
        self._n, self._buf, self._offs = n, [], []  # this block's samples are not learned
        self._level_to(level, HELD - HELD // 2)
        self._reset_tests()
        self._jumps.clear()
        self._s_hist.clear()
        self._s_cand = -1
        self._h_xs.clear()
        self._h_peak = 0.0
        return change

    def _level_to(self, level: float, samples: int) -> None:
        """Move the baseline's level to ``level``, known from ``samples`` samples. The
        dependence is kept, and so is the spread unless the level moved beyond the held
        test's bar (beyond the clip, and 4 times as far as the stream has ever held):
        that is a new regime (a pump that started, a flow that fell to nothing), whose
        spread need not be the old one's. Its spread, and the jump and step tests' usual
        differences, are then worth a warm-up's samples, a prior the samples after the
        move outweigh at once (the jump and step tests wait until they have)."""
        if abs(level - self._mu) > self._h_bar * self._sd:
            self._n_est = min(self._n_est, self.warmup)
            self._a_n = min(self._a_n, 2)
            self._j_n = min(self._j_n, 2)
            self._s_n = min(self._s_n, 2)
        self._mu = level
        self._n_mu = samples
        self._refit()

    def _blind(self) -> bool:
        """Whether the level CUSUM cannot find a step before its baseline learns it: its
        reference at or beyond the clip, so no step, however large, adds to its
        statistic; or so near it that a step of the clip takes longer to cross the
        threshold than a block waits to be learned (``max_pending`` blocks; a coarse
        sensor's wander, whose steps hide how little it moves between them)."""
        gain = self._clip - self._k_raw
        return gain <= 0 or self._hl * self._scale > gain * self.max_pending * self.block

    def _jump(self, median: float, blind: bool) -> Change | None:
        """The jump test on this block's median (see the module's docstring); ``blind``
        is whether the level CUSUM is (:meth:`_blind`)."""
        jumps = self._jumps
        jumps.append((median, self._start_ms))
        if len(jumps) < 4:
            return None
        diff = abs(median - jumps[0][0])  # the statistic tested: three blocks apart
        # mean absolute difference to sd, for a normal one; medians of a reading in steps
        # of q are in steps of q too, and differ by q / sqrt(6) from their steps alone
        sigma = max(self._j_abs * 1.2533, self._res / SQRT6)
        # only where the CUSUM is blind (elsewhere it is the better test)
        if self._j_n >= 16 and blind:
            z = self._j_z * (1 + 1 / math.sqrt(self._j_n)) * sigma
            (before, _), (middle, mid_ms), (held, held_ms), _ = jumps
            step, first, second = median - before, middle - before, held - before
            if min(abs(step), abs(second)) > z and abs(first) > z / 2 and \
                    first * step > 0 and second * step > 0:
                return self._jumped(before, middle, median, mid_ms, held_ms, step, z)
        # a difference half way to what the test calls large does not teach it what is
        # usual (a step under way would widen the scale it is judged by)
        if self._j_n < 16 or diff <= self._j_z * sigma / 2:
            self._j_n = min(self._j_n + 1, self.memory // self.block)
            self._j_abs += (diff - self._j_abs) / self._j_n
        return None

    def _step(self, xs: list[float], offs: list[float], start_ms: int) -> Change | None:
        """The step test (see the module's docstring): the previous block's largest
        one-sample difference of the readings, judged now that the samples after it
        are in."""
        hist = self._s_hist
        # loops over floats, not map() over operator's functions: compiled, each step is
        # C arithmetic where map calls a function per element
        raw = xs
        for o in offs:
            if o != 0.0:  # any(offs)
                raw = [x + off for x, off in zip(xs, offs)]  # noqa: B905 - one length
                break
        prev = hist[-1][1] if hist else None
        diffs: list[float] = []
        last = prev[-1] if prev else raw[0]
        for x in (raw if prev else raw[1:]):
            diffs.append(x - last)
            last = x
        size = sorted([abs(d) for d in diffs])
        # the differences' sd, were they normal; a reading in steps of q differs by
        # q / sqrt(6) from its resolution alone (two roundings), where most of a block's
        # differences are 0
        least = 0
        while least < len(size) and size[least] <= 0.0:
            least += 1
        if least < len(size) and (size[least] < self._res or not self._res):
            self._res = size[least]
        typical = max(size[len(size) // 2] * 1.4826, self._res / SQRT6)
        change = None
        cand = self._s_cand
        if len(hist) == 2 and cand >= 0 and self._s_abs > 0:
            b = self.block
            q = b + cand  # the candidate's place in the last three blocks
            readings = hist[0][1] + hist[1][1]  # it and the reading before it are in these
            step = readings[q] - readings[q - 1]
            # whether it held is asked of what is tested: a reference that moved with
            # the reading (the whole fleet stepped) takes the step back out
            around = hist[0][0] + hist[1][0] + xs
            # the levels on either side, not the readings: a spike's way back, or an
            # outlier's next reading, is a jump from one reading, and holds from it
            before = median(around[q - 8:q])
            held = median(around[q + 1:q + 9]) - before
            z = abs(step) / self._s_abs if step * held > 0 and 2 * abs(held) >= abs(step) \
                else 0.0
            if self._s_n >= self.young // b and z > max(self._j_z, STEP_RECORD * self._s_rec):
                change = self._stepped(before, before + held, cand, hist[1][2], start_ms,
                                       step, z)
            elif self._s_n >= 4:
                self._s_rec = max(self._s_rec, z)
        if change is None:
            self._s_n = min(self._s_n + 1, self.memory // self.block)
            self._s_abs += (typical - self._s_abs) / self._s_n
            hist.append((xs, raw, start_ms))
            # the first largest difference either way (as max, min and index find it)
            hi_at = lo_at = 0
            for j in range(1, len(diffs)):
                d = diffs[j]
                if d > diffs[hi_at]:
                    hi_at = j
                if d < diffs[lo_at]:
                    lo_at = j
            hi, lo = diffs[hi_at], diffs[lo_at]
            self._s_cand = (hi_at if hi >= -lo else lo_at) + (len(xs) - len(diffs))
        return change

    def _stepped(self, before: float, after: float, at: int, block_ms: int, next_ms: int,
                 step: float, z: float) -> Change:
        """A confirmed step from ``before`` to ``after`` at sample ``at`` of the previous
        block: the level moves there at once; dependence and spread are kept."""
        b = self.block
        onset_n = self.n - 2 * b + 1 + at
        onset_ms = block_ms + (next_ms - block_ms) * at // b
        change = Change("level", "up" if step > 0 else "down", (after - self._mu) / self._sd,
                        self.n, onset_n, onset_ms, self._mu, self._sd, self._rho,
                        z, STEP_RECORD * self._s_rec)
        self._level_to(after, b)
        self._reset_tests()
        self._jumps.clear()
        self._s_hist.clear()
        self._s_cand = -1
        return change

    def _jumped(self, before: float, middle: float, after: float, mid_ms: int, held_ms: int,
                step: float, threshold: float) -> Change:
        """A confirmed jump from ``before`` to ``after``, begun in the middle block: the
        level moves there at once; dependence and spread are kept."""
        b = self.block
        share = min(max((middle - before) / step, 0.0), 1.0)  # of the middle block: new level
        late = b - round(share * b)
        onset_n = self.n - 3 * b + 1 + late
        onset_ms = mid_ms + (held_ms - mid_ms) * late // b
        change = Change("level", "up" if step > 0 else "down", (after - self._mu) / self._sd,
                        self.n, onset_n, onset_ms, self._mu, self._sd, self._rho,
                        abs(step) / (threshold or 1.0), 1.0)
        self._level_to(after, b)
        self._reset_tests()
        self._jumps.clear()
        return change

    def _decide(self, a: float) -> Change | None:
        """The :class:`Change` a test that crossed its threshold found; moves the baseline
        to the new regime (the level first: a level step also stirs the spread)."""
        gp, gn, sp, sn, hl = self._gp, self._gn, self._sp, self._sn, self._hl
        if gp > hl or gn > hl:
            up = gp >= gn
            blocks = [p for p in self._pending if p[0] >= (self._on_gp if up else self._on_gn)]
            b = self.block
            start = onset_index([(p[1] if up else -p[1]) for p in blocks])
            # the onset's own block is partly the old level: the new one is read after it
            after = blocks[start + 1:] or blocks[start:]
            level = sum(p[5] for p in after) / (b * len(after))
            # and how much of that block is on the new level places the onset within it
            shift = level - self._mu
            share = (blocks[start][5] / b - self._mu) / shift if shift else 1.0
            late = b - round(min(max(share, 0.0), 1.0) * b)  # samples before the change
            onset_n = blocks[start][0] - b + 1 + late
            onset_ms = blocks[start][6]
            if start + 1 < len(blocks):
                onset_ms += (blocks[start + 1][6] - onset_ms) * late // b
            change = Change("level", "up" if up else "down", (level - self._mu) / self._sd,
                            self.n, onset_n, onset_ms, self._mu, self._sd, self._rho,
                            max(gp, gn), hl)
            # the new level is what the samples since the onset say, known as well as
            # that many samples tell
            self._level_to(level, max(self.block, self.n - onset_n + 1))
            return change
        up = sp >= sn
        onset_n, onset_ms, total = ((self._on_sp, self._ms_sp, self._sum_sp) if up
                                    else (self._on_sn, self._ms_sn, self._sum_sn))
        n_blocks = max(1, (self.n - onset_n + 1) // self.block)
        ratio = max(total / n_blocks / self._a_mean, 1e-3)
        change = Change("spread", "up" if up else "down", ratio - 1.0, self.n, onset_n,
                        onset_ms, self._mu, self._sd, self._rho, max(sp, sn), self._hs)
        # the spread scales by the ratio found, with as little confidence as the samples
        # since the onset give
        r2 = ratio * ratio
        self._m2 *= r2
        self._c1 *= r2
        self._c2 *= r2
        self._a_mean *= ratio
        self._a_var *= r2
        self._a_c1 *= r2
        self._n_est = max(self.warmup, min(self._n_est, self.n - onset_n + 1))
        self._a_n = max(2, min(self._a_n, n_blocks))
        self._refit()
        self._refit_spread()
        return change

    def _learn_block(self, _end: int, s1: float, s2: float, s11: float, a: float,
                     s12: float) -> None:
        """Fold a settled block into the baseline (expanding, then forgetting)."""
        b = self.block
        n = self._n_est = min(self._n_est + b, self.memory)
        w = b / n
        # the level is the mean of the samples since it last moved (a level set by a
        # change from the few samples after it is refined at once), then forgets
        self._mu += s1 / min(n, self._n_mu + b)
        self._m2 = (1 - w) * self._m2 + w * (s2 / b)
        self._c1 = (1 - w) * self._c1 + w * (s11 / b)
        self._c2 = (1 - w) * self._c2 + w * (s12 / b)
        self._n_mu = min(self._n_mu + b, self.memory)
        # a batch of BATCH samples' mean about the level: its variance, times BATCH, is
        # the long-run variance whatever the dependence (once BATCH exceeds its reach)
        self._bm_acc += s1
        self._bm_fill += b
        if self._bm_fill >= BATCH:
            mean = self._bm_acc / self._bm_fill
            self._bm_n = min(self._bm_n + 1, self.memory // BATCH)
            self._bm_var += (mean * mean - self._bm_var) / self._bm_n
            self._bm_acc, self._bm_fill = 0.0, 0
        # until the spread test starts, its baseline follows the dependence estimate
        cap = self.memory // b if n >= self.spread_after else 8
        na = self._a_n = min(self._a_n + 1, cap)
        wa = 1 / na
        delta = a - self._a_mean
        self._a_mean += wa * delta
        self._a_var = (1 - wa) * (self._a_var + wa * delta * delta)
        self._a_c1 = (1 - wa) * self._a_c1 + wa * delta * self._a_prev
        self._a_prev = delta


def _held_record(zs: list[float]) -> float:
    """The largest excursion held HELD samples in a row by deviations ``zs``: of every
    HELD consecutive, how far beyond zero the nearest to it is, all on one side.

    >>> _held_record([0.0, 2.0, 3.0, 2.5, 5.0, 9.0, 0.0]), _held_record([1.0, -1.0] * 4)
    (2.5, 0.0)
    """
    best = 0.0
    for i in range(len(zs) - HELD + 1):
        window = zs[i:i + HELD]
        best = max(best, min(window), -max(window))
    return best


def _varied(xs: list[float]) -> bool:
    """Whether the readings took more than one value."""
    first = xs[0]
    return any(x != first for x in xs)


def _resolution(xs: list[float]) -> float:
    """The smallest step between two different readings (0 when all are equal): a
    sensor's resolution, for one that reports in steps.

    >>> _resolution([20.0, 20.0, 21.0, 20.0, 22.0]), _resolution([3.0, 3.0])
    (1.0, 0.0)
    """
    values = sorted(set(xs))
    return min((b - a for a, b in itertools.pairwise(values)), default=0.0)
