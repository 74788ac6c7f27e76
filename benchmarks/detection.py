"""Detection benchmark: ``python -m benchmarks.detection`` (also run by ``make bench``).

Over a family of synthetic processes, AR(1) with lag-1 autocorrelation rho in
{0, 0.5, 0.85, 0.95} and Gaussian or Student-t(3) innovations, and a slow wander
under noise (an AR(1) of rho 0.99 or 0.997 carrying 90 % of the variance, white
noise the rest: a level that drifts over hundreds of samples under a sensor's
own noise, whose lag-1 autocorrelation understates how far it wanders), each
scaled so the stationary standard deviation is 1, it measures lucidstream's value detector
(:class:`operators.changes.ChangeDetector`, every alarm counted, no debounce)
beside river's ADWIN, PageHinkley and KSWIN with their default settings fed
every raw sample, which is what a user would try first:

* false alarms per million samples per stream, on change-free streams of
  ``--length`` samples, counted from the first sample;
* the delay (samples from the change to the first alarm after it; median and
  p95, a miss counts as never) for a 3 sd step, a 2 sd step, a variance x3 and
  a ramp of 4 sd over 300 samples, each after ``--history`` clean samples and
  followed for ``--horizon`` samples;
* the median onset error of a 3 sd step (lucidstream only: river's detectors
  do not estimate where a change began).

Prints a table with the machine noted and writes ``benchmarks/detection.json``.
KSWIN costs about 230 us a sample, so it runs ``--kswin-trials`` trials a cell.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from benchmarks.stages import machine

RHOS = (0.0, 0.5, 0.85, 0.95)
# a slow wander under noise: the wander's rho, and its share of the variance
WANDERS = {"0.99+noise": (0.99, 0.9), "0.997+noise": (0.997, 0.9)}
PROCESSES = (*RHOS, *WANDERS)
DISTS = ("gauss", "t3")
CHANGES = ("step3", "step2", "var3", "ramp4")
DETECTORS = ("lucidstream", "adwin", "page_hinkley", "kswin")
OUT = Path(__file__).resolve().parent / "detection.json"


def ar1(rng: np.random.Generator, trials: int, n: int, rho: float, dist: str) -> np.ndarray:
    """``trials`` stationary AR(1) series of ``n`` samples with unit variance."""
    if dist == "gauss":
        e = rng.standard_normal((trials, n))
    else:  # Student-t(3) scaled to unit variance: heavy tails, finite variance
        e = rng.standard_t(3, (trials, n)) / math.sqrt(3.0)
    x = np.empty((trials, n))
    scale = math.sqrt(1 - rho * rho)
    prev = e[:, 0]  # a unit-variance start: the process is stationary from sample 0
    x[:, 0] = prev
    for i in range(1, n):
        prev = rho * prev + scale * e[:, i]
        x[:, i] = prev
    return x


def process(rng: np.random.Generator, trials: int, n: int, rho: float | str,
            dist: str) -> np.ndarray:
    """``trials`` series of one of ``PROCESSES`` with unit variance: AR(1), or a slow
    AR(1) wander (``WANDERS``) plus white noise of the same innovations."""
    if isinstance(rho, float):
        return ar1(rng, trials, n, rho, dist)
    slow, share = WANDERS[rho]
    noise = ar1(rng, trials, n, 0.0, dist)
    return math.sqrt(share) * ar1(rng, trials, n, slow, dist) + math.sqrt(1 - share) * noise


def inject(x: np.ndarray, change: str, at: int) -> np.ndarray:
    x = x.copy()
    if change == "step3":
        x[:, at:] += 3.0
    elif change == "step2":
        x[:, at:] += 2.0
    elif change == "var3":  # the deviations from the mean grow by sqrt(3): variance x3
        x[:, at:] *= math.sqrt(3.0)
    elif change == "ramp4":
        x[:, at:] += np.minimum(4.0, 4.0 * np.arange(1, x.shape[1] - at + 1) / 300.0)
    return x


def alarms_of(detector: str, series: np.ndarray) -> list[tuple[int, int | None]]:
    """(sample index, estimated onset index or None) of every alarm on ``series``."""
    found: list[tuple[int, int | None]] = []
    if detector == "lucidstream":
        from operators.changes import ChangeDetector
        update = ChangeDetector().update
        for i, v in enumerate(series.tolist()):
            change = update(v, i)
            if change is not None:
                found.append((i, change.onset_sample - 1))
        return found
    from river import drift
    det = {"adwin": drift.ADWIN, "page_hinkley": drift.PageHinkley,
           "kswin": lambda: drift.KSWIN(seed=0)}[detector]()
    for i, v in enumerate(series.tolist()):
        det.update(v)
        if det.drift_detected:
            found.append((i, None))
    return found


def run_cell(job: tuple) -> dict:
    detector, rho, dist, change, trials, length, history, horizon, seed = job
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    if change == "none":
        x = process(rng, trials, length, rho, dist)
        count = sum(len(alarms_of(detector, row)) for row in x)
        return {"detector": detector, "rho": rho, "dist": dist, "change": change,
                "trials": trials, "samples": trials * length,
                "fa_per_million": count / (trials * length) * 1e6, "alarms": count,
                "seconds": time.perf_counter() - started}
    x = inject(process(rng, trials, history + horizon, rho, dist), change, history)
    delays, onset_errors = [], []
    for row in x:
        after = [(i, o) for i, o in alarms_of(detector, row) if i >= history]
        if after:
            delays.append(after[0][0] - history)
            if after[0][1] is not None:
                onset_errors.append(abs(after[0][1] - history))
        else:
            delays.append(math.inf)
    return {"detector": detector, "rho": rho, "dist": dist, "change": change,
            "trials": trials, "found": sum(1 for d in delays if math.isfinite(d)),
            "median": quantile(delays, 0.5), "p95": quantile(delays, 0.95),
            "onset_error_median": float(np.median(onset_errors)) if onset_errors else None,
            "seconds": time.perf_counter() - started}


def quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile by rank (no interpolation, so a miss, ``inf``, stays one)."""
    ranked = sorted(values)
    return ranked[min(len(ranked) - 1, max(0, math.ceil(q * len(ranked)) - 1))]


def jobs(args: argparse.Namespace) -> list[tuple]:
    out = []
    for detector in args.detectors:
        trials = args.kswin_trials if detector == "kswin" else args.trials
        for r_i, rho in enumerate(PROCESSES):
            for s_i, dist in enumerate(DISTS):
                for c_i, change in enumerate(("none", *CHANGES)):
                    if change != "none" and dist != "gauss" and not args.all_changes:
                        continue  # delays on Gaussian innovations; false alarms on both
                    # the same seed for every detector: they see the same streams
                    seed = args.seed * 1_000 + r_i * 100 + s_i * 10 + c_i
                    length = args.length if detector != "kswin" else args.kswin_length
                    out.append((detector, rho, dist, change, trials, length, args.history,
                                args.horizon, seed))
    return out


def fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return "never" if math.isinf(v) else f"{v:.0f}"


def table(results: list[dict]) -> str:
    """The results as one markdown table: a row per detector and process."""
    head = ("| detector | rho | innovations | false alarms / M | 3 sd med / p95 | "
            "2 sd med / p95 | var x3 med / p95 | ramp 4 sd med / p95 | onset err (3 sd) |")
    lines = [head, "|" + "---|" * 9]
    by = {(r["detector"], r["rho"], r["dist"], r["change"]): r for r in results}
    for detector in DETECTORS:
        for rho in PROCESSES:
            for dist in DISTS:
                fa = by.get((detector, rho, dist, "none"))
                if fa is None:
                    continue
                cells = []
                for change in CHANGES:
                    r = by.get((detector, rho, dist, change))
                    cells.append("" if r is None else f"{fmt(r['median'])} / {fmt(r['p95'])}")
                step = by.get((detector, rho, dist, "step3"))
                onset = fmt(step["onset_error_median"]) if step else ""
                lines.append(f"| {detector} | {rho} | {dist} | {fa['fa_per_million']:.2f} "
                             f"({fa['alarms']} in {fa['samples']:,}) | " + " | ".join(cells)
                             + f" | {onset} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.detection",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=200, help="trials per cell")
    parser.add_argument("--length", type=int, default=20_000,
                        help="samples of each change-free stream")
    parser.add_argument("--history", type=int, default=5_000,
                        help="clean samples before a change")
    parser.add_argument("--horizon", type=int, default=2_000,
                        help="samples followed after a change")
    parser.add_argument("--kswin-trials", type=int, default=5)
    parser.add_argument("--kswin-length", type=int, default=5_000)
    parser.add_argument("--detectors", nargs="+", default=list(DETECTORS), choices=DETECTORS)
    parser.add_argument("--all-changes", action="store_true",
                        help="delays on t(3) innovations too")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    work = sorted(jobs(args), key=lambda j: j[0] == "kswin", reverse=True)  # longest first
    with Pool(args.processes) as pool:
        results = list(pool.imap_unordered(run_cell, work))
    report = {"date": time.strftime("%Y-%m-%d"), "machine": machine(),
              "settings": {k: v for k, v in vars(args).items() if k != "out"},
              "seconds": round(time.perf_counter() - started, 1), "results": results}
    print(f"lucidstream detection benchmark, {report['date']}; machine: "
          f"{json.dumps(report['machine'])}")
    print(f"{args.trials} trials a cell ({args.kswin_trials} for KSWIN); false alarms on "
          f"{args.length:,}-sample streams ({args.kswin_length:,} for KSWIN); changes after "
          f"{args.history:,} clean samples, followed for {args.horizon:,}; delays in samples")
    print(table(results))
    print(f"({report['seconds']} s)")
    args.out.write_text(json.dumps(report, indent=1, default=str))
    return report


if __name__ == "__main__":
    main()
