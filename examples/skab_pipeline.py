"""pdm's default pipeline on SKAB files, from Python: load with pandas, fit, score, save.

Each SKAB file is one experiment on a water-circulation test rig: 8 sensor channels at 1 Hz and
an ``anomaly`` label column. As in SKAB's leaderboard protocol, the pipeline learns normal
operation from the first 400 rows of each file and flags the rest; the confusion counts are
summed over the files before the ratios. The last fitted model is saved in pdm's model format,
which the server loads unchanged.

    pip install ./pdm-py pandas
    python examples/skab_pipeline.py ../shared/data/skab/data/valve1/1.csv [more files] \
        [--save pump.pdm.json]

With no file given it reads every CSV under ``$PDM_SKAB_DIR/data/valve1`` and ``valve2``.
"""

import argparse
import glob
import os
import sys

import pandas as pd

import pdm_engine as pe

TRAIN_ROWS = 400


def skab_files(args_files):
    if args_files:
        return args_files
    root = os.environ.get("PDM_SKAB_DIR")
    if not root:
        sys.exit("give SKAB CSV files, or set PDM_SKAB_DIR to the folder holding data/valve1")
    files = sorted(glob.glob(os.path.join(root, "data", "valve1", "*.csv")))
    files += sorted(glob.glob(os.path.join(root, "data", "valve2", "*.csv")))
    if not files:
        sys.exit(f"no CSV under {root}/data/valve1 or valve2")
    return files


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", help="SKAB CSV files (';'-separated)")
    parser.add_argument("--save", default="skab-pipeline.pdm.json", help="where to save the last model")
    args = parser.parse_args()

    results = []
    model = None
    for path in skab_files(args.files):
        frame = pd.read_csv(path, sep=";", index_col="datetime", parse_dates=True)
        truth = frame.pop("anomaly").to_numpy() == 1
        frame = frame.drop(columns=["changepoint"])
        # Columns name the channels; the model keeps them, so the server knows its sensors.
        model = pe.Pipeline().fit(frame.iloc[:TRAIN_ROWS])
        flagged = model.predict(frame) == -1
        results.append((flagged[TRAIN_ROWS:], truth[TRAIN_ROWS:]))
        events = model.events(frame)
        print(f"{path}: {len(events)} alarm event(s), first at {frame.index[events[0].start] if events else '-'}")

    m = pe.skab_metrics(results)
    print()
    print(f"{len(results)} file(s), default pipeline: F1 {m.f1:.2f}  FAR {100 * m.far:.2f} %  MAR {100 * m.mar:.2f} %")
    print("SKAB leaderboard, best F1 (Conv-AE): F1 0.78  FAR 13.55 %  MAR 28.02 %")
    model.save(args.save)
    print(f"saved the model of {path} to {args.save} (channels: {', '.join(model.channels_)})")


if __name__ == "__main__":
    main()
