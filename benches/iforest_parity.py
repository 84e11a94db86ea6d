#!/usr/bin/env python3
"""Isolation Forest parity: pdm_engine against scikit-learn, in one process, on NAB and SKAB.

Usage:
    python benches/iforest_parity.py [--nab DIR] [--skab DIR] [--seeds 0 1 2 3 4]

DIR defaults to $PDM_NAB_DIR / $PDM_SKAB_DIR (the folders holding NAB's data/ and labels/, and
SKAB's data/). Both sides get the same arrays and the same protocol, with 100 trees,
max_samples="auto", one thread:

- NAB (all 58 files): features [value, value - previous value], fitted on every row; the
  anomaly score of each row is ranked against NAB's labelled windows (ROC AUC).
- SKAB (every labelled CSV under DIR, e.g. valve1 + valve2): the 8 sensors, fitted on the
  first 400 rows, the other rows ranked against the `anomaly` column.

Per corpus it prints the mean ROC AUC of each side over files and seeds, and the difference
(target: at most 0.01). Then `contamination`: for 0.01, 0.05 and 0.1 on the NAB files, the
share of training rows each side predicts as outliers (both should be the contamination) and
the mean offset. The random streams differ, so single trees and scores cannot match; these
statistics must.

Needs: pip install ./pdm-py scikit-learn pandas
"""

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest as SkForest
from sklearn.metrics import roc_auc_score

import pdm_engine


def nab_files(root):
    labels = json.loads((root / "labels" / "combined_windows.json").read_text())
    for key in sorted(labels):
        df = pd.read_csv(root / "data" / key)
        t = pd.to_datetime(df["timestamp"])
        y = np.zeros(len(df), dtype=bool)
        for a, b in labels[key]:
            y |= ((t >= pd.Timestamp(a)) & (t <= pd.Timestamp(b))).to_numpy()
        v = df["value"].to_numpy(dtype=float)
        X = np.column_stack([v, np.diff(v, prepend=v[0])])
        yield key, X, X, y


def skab_files(root):
    for path in sorted((root / "data").rglob("*.csv")):
        df = pd.read_csv(path, sep=";")
        if "anomaly" not in df.columns:
            continue
        y = df["anomaly"].to_numpy() == 1
        X = df.drop(columns=["datetime", "anomaly", "changepoint"]).to_numpy(dtype=float)
        if y[400:].all() or not y[400:].any():
            continue
        yield str(path.relative_to(root)), X[:400], X[400:], y[400:]


def auc_pair(train, test, y, seed):
    sk = SkForest(n_estimators=100, random_state=seed, n_jobs=1).fit(train)
    ours = pdm_engine.IsolationForest(n_estimators=100, random_state=seed).fit(train)
    return roc_auc_score(y, -sk.score_samples(test)), roc_auc_score(y, -ours.score_samples(test))


def corpus(name, files, seeds):
    sk_aucs, our_aucs = [], []
    n = 0
    for key, train, test, y in files:
        if y.all() or not y.any():
            continue
        n += 1
        for seed in seeds:
            a, b = auc_pair(train, test, y, seed)
            sk_aucs.append(a)
            our_aucs.append(b)
    sk_mean, our_mean = np.mean(sk_aucs), np.mean(our_aucs)
    print(
        f"{name:<6} {n:>5} files x {len(seeds)} seeds   scikit-learn {sk_mean:.4f}   pdm {our_mean:.4f}"
        f"   difference {our_mean - sk_mean:+.4f}   (|mean per-file difference| "
        f"{abs(np.mean(np.array(our_aucs) - np.array(sk_aucs))):.4f})"
    )
    return our_mean - sk_mean


def contamination(files, seeds):
    print()
    print(f"{'contamination':>13} {'sklearn outliers':>17} {'pdm outliers':>13} {'sklearn offset':>15} {'pdm offset':>11}")
    data = [train for _, train, _, _ in files]
    for c in (0.01, 0.05, 0.1):
        rows = []
        for X in data:
            for seed in seeds:
                sk = SkForest(n_estimators=100, random_state=seed, n_jobs=1, contamination=c).fit(X)
                ours = pdm_engine.IsolationForest(n_estimators=100, random_state=seed, contamination=c).fit(X)
                rows.append(
                    (np.mean(sk.predict(X) == -1), np.mean(ours.predict(X) == -1), sk.offset_, ours.offset_)
                )
        r = np.mean(rows, axis=0)
        print(f"{c:>13} {r[0]:>17.4f} {r[1]:>13.4f} {r[2]:>15.4f} {r[3]:>11.4f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nab", type=Path, default=os.environ.get("PDM_NAB_DIR"))
    parser.add_argument("--skab", type=Path, default=os.environ.get("PDM_SKAB_DIR"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    args = parser.parse_args()
    if args.nab is None and args.skab is None:
        sys.exit("give --nab and/or --skab (or set PDM_NAB_DIR / PDM_SKAB_DIR)")
    import sklearn

    print(f"scikit-learn {sklearn.__version__}; mean ROC AUC over files and seeds, 100 trees, one thread")
    worst = 0.0
    if args.nab is not None:
        worst = max(worst, abs(corpus("NAB", list(nab_files(args.nab)), args.seeds)))
    if args.skab is not None:
        worst = max(worst, abs(corpus("SKAB", list(skab_files(args.skab)), args.seeds)))
    if args.nab is not None:
        contamination(list(nab_files(args.nab)), args.seeds[:2])
    print()
    print(f"largest |difference| of mean ROC AUC: {worst:.4f} (target <= 0.01)")


if __name__ == "__main__":
    main()
