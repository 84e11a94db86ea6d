#!/usr/bin/env python3
"""Reference numbers from scikit-learn's IsolationForest, to compare pdm-detect against.

Usage:
    python benches/iforest_parity.py PATH [--seeds 0 1 2 3 4] [--n-estimators 100]
                                          [--contamination auto|FLOAT] [--json]

PATH is one CSV file or a NAB folder (the one holding data/ and labels/, e.g.
$PDM_NAB_DIR); a folder means every CSV under data/realKnownCause. Features are the same as
pdm-detect's NAB test: [value, value - previous value] (0 for the first row) when the CSV has
a `value` column, else every numeric column. Labels, for ROC AUC, come from NAB's
labels/combined_windows.json (rows inside a window are positives; found next to a NAB folder or
two levels above a NAB CSV), or from a `label` column; without labels AUC is left blank.

For each file and seed it fits IsolationForest(n_estimators, random_state=seed, n_jobs=1) on
all rows and prints the mean/std/min/max of score_samples, offset_, the share of rows predicted
-1, and the ROC AUC of the anomaly score (-score_samples); then the mean and spread over seeds.
Individual trees cannot match pdm-detect's (the random streams differ), so compare these
statistics, not single scores. --json prints one JSON object per file and seed instead, for a
later comparison binary.

Needs: pip install scikit-learn pandas (not part of the project's dependencies).
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score


def features(df):
    if "value" in df.columns:
        v = df["value"].to_numpy(dtype=float)
        return np.column_stack([v, np.diff(v, prepend=v[0])])
    cols = [c for c in df.select_dtypes("number").columns if c != "label"]
    return df[cols].to_numpy(dtype=float)


def labels(csv, df, windows):
    if "label" in df.columns:
        return df["label"].to_numpy() != 0
    if windows is None or "timestamp" not in df.columns:
        return None
    key = f"{csv.parent.name}/{csv.name}"
    if key not in windows:
        return None
    ts = pd.to_datetime(df["timestamp"])
    y = np.zeros(len(df), dtype=bool)
    for start, end in windows[key]:
        y |= (ts >= pd.Timestamp(start)).to_numpy() & (ts <= pd.Timestamp(end)).to_numpy()
    return y


def load_windows(nab_dir):
    p = nab_dir / "labels" / "combined_windows.json"
    return json.loads(p.read_text()) if p.exists() else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("path", type=Path)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--n-estimators", type=int, default=100)
    ap.add_argument("--contamination", default="auto")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    contamination = a.contamination if a.contamination == "auto" else float(a.contamination)

    if not a.path.exists():
        sys.exit(f"{a.path} does not exist")
    if a.path.is_dir():
        files = sorted((a.path / "data" / "realKnownCause").glob("*.csv"))
        windows = load_windows(a.path)
    else:
        files = [a.path]
        windows = load_windows(a.path.parent.parent.parent)
    if not files:
        sys.exit(f"no CSV found at {a.path}")

    for csv in files:
        df = pd.read_csv(csv)
        x, y = features(df), labels(csv, df, windows)
        has_both = y is not None and 0 < y.sum() < len(y)
        aucs = []
        for seed in a.seeds:
            m = IsolationForest(n_estimators=a.n_estimators, contamination=contamination,
                                random_state=seed, n_jobs=1).fit(x)
            s = m.score_samples(x)
            auc = roc_auc_score(y, -s) if has_both else None
            aucs.append(auc)
            row = dict(file=csv.name, seed=seed, rows=len(x), features=x.shape[1],
                       max_samples=int(m.max_samples_), mean=float(s.mean()),
                       std=float(s.std()), min=float(s.min()), max=float(s.max()),
                       offset=float(m.offset_), outlier_share=float((m.predict(x) == -1).mean()),
                       auc=auc)
            if a.json:
                print(json.dumps(row))
            else:
                print(f"{csv.name:45s} seed {seed:3d}  score_samples mean {row['mean']:.4f} "
                      f"std {row['std']:.4f} min {row['min']:.4f} max {row['max']:.4f}  "
                      f"offset {row['offset']:.4f}  -1 share {row['outlier_share']:.3f}  "
                      f"AUC {'-' if auc is None else f'{auc:.3f}'}")
        if not a.json and has_both:
            print(f"{csv.name:45s} AUC over {len(aucs)} seeds: mean {np.mean(aucs):.3f} "
                  f"min {np.min(aucs):.3f} max {np.max(aucs):.3f}")


if __name__ == "__main__":
    main()
