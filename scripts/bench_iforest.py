#!/usr/bin/env python3
"""Reference side of the isolation-forest benchmark: scikit-learn's IsolationForest.

    python scripts/bench_iforest.py --csv shuttle.csv [--name NAME] [--seeds 5] [--json-out F]

CSV with a header row; every column but the last is a feature, the last is the label
(1 = anomaly). For seed in 0..seeds: IsolationForest(n_estimators=100, max_samples=256,
random_state=seed) is fitted on all rows and scores all rows (score = -score_samples, higher
= more anomalous), as our `iforest` bench does. Prints (and appends to --json-out) one line per
seed and a summary line (and appends them to --json-out):
  {"bench": "iforest", "series": NAME, "impl": "scikit-learn", "method": "1 thread",
   "seed": 0, "auc": ..., "seconds": ...}
  {"bench": "iforest", "series": NAME, "impl": "scikit-learn", "summary": true, "seeds": 5,
   "auc_mean": ..., "auc_std": ..., "seconds_mean": ...}
scikit-learn runs twice: with its default n_jobs=None (one thread), and with n_jobs=-1 (every
core) when the machine has more than one.
`seconds` is the wall time of fit + score_samples; `auc` the ROC-AUC (ties count one half).
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--csv", required=True)
    ap.add_argument("--name", help="the data set's name in the output (default: the path)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--json-out", help="also append the JSON lines to this file")
    args = ap.parse_args()

    data = np.loadtxt(args.csv, delimiter=",", skiprows=1, dtype=float, ndmin=2)
    x, labels = data[:, :-1], data[:, -1]
    if not set(np.unique(labels)) <= {0.0, 1.0}:
        sys.exit(f"{args.csv}: last column must be 0/1 (1 = anomaly)")
    y = labels == 1.0
    name = args.name or args.csv
    print(f"{x.shape[0]} rows x {x.shape[1]} features, {int(y.sum())} anomalies", file=sys.stderr)

    lines = []
    cores = os.cpu_count() or 1
    for n_jobs in [None, -1] if cores > 1 else [None]:
        method = "1 thread" if n_jobs is None else f"{cores} threads (n_jobs=-1)"
        runs = []
        for seed in range(args.seeds):
            t = time.perf_counter()
            forest = IsolationForest(n_estimators=100, max_samples=256, random_state=seed,
                                     n_jobs=n_jobs).fit(x)
            scores = -forest.score_samples(x)
            secs = time.perf_counter() - t
            runs.append({"bench": "iforest", "series": name, "impl": "scikit-learn",
                         "method": method, "seed": seed,
                         "auc": float(roc_auc_score(y, scores)), "seconds": secs})
            print(json.dumps(runs[-1]), flush=True)
        aucs = [line["auc"] for line in runs]
        runs.append({"bench": "iforest", "series": name, "impl": "scikit-learn",
                     "method": method, "summary": True, "seeds": len(aucs),
                     "auc_mean": statistics.fmean(aucs), "auc_std": statistics.pstdev(aucs),
                     "seconds_mean": statistics.fmean(line["seconds"] for line in runs)})
        print(json.dumps(runs[-1]), flush=True)
        lines += runs
    if args.json_out:
        with open(args.json_out, "a") as f:
            f.writelines(json.dumps(line) + "\n" for line in lines)


if __name__ == "__main__":
    main()
