"""Isolation Forest speed: pdm_engine against scikit-learn, same process, same arrays.

Both single-threaded (n_jobs=1 / None), 100 trees, max_samples="auto"; fit and score_samples on
10^5 and 10^6 rows of 8 standard-normal features, best of --repeat runs each. Prints the times
and the ratios (scikit-learn time / pdm time: above 1 means pdm is faster).

    pip install ./pdm-py scikit-learn
    python benches/iforest_speed.py [--rows 100000 1000000] [--features 8] [--repeat 3]
"""

import argparse
import time

import numpy as np


def best_of(repeat, fn):
    best = float("inf")
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--features", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import sklearn
    from sklearn.ensemble import IsolationForest as SkForest
    from threadpoolctl import threadpool_limits

    import pdm_engine

    print(f"scikit-learn {sklearn.__version__}, pdm_engine (format {pdm_engine.MODEL_FORMAT_VERSION})")
    print(f"{'rows':>9} {'step':>14} {'sklearn s':>10} {'pdm s':>10} {'ratio':>7} {'pdm us/row':>11}")
    rng = np.random.default_rng(0)
    with threadpool_limits(1):
        for n in args.rows:
            X = rng.normal(size=(n, args.features))
            sk_fit, sk = best_of(args.repeat, lambda: SkForest(n_estimators=100, random_state=0, n_jobs=1).fit(X))
            pdm_fit, pdm = best_of(
                args.repeat, lambda: pdm_engine.IsolationForest(n_estimators=100, random_state=0).fit(X)
            )
            sk_score, _ = best_of(args.repeat, lambda: sk.score_samples(X))
            pdm_score, _ = best_of(args.repeat, lambda: pdm.score_samples(X))
            for step, s, p in (("fit", sk_fit, pdm_fit), ("score_samples", sk_score, pdm_score)):
                print(f"{n:>9} {step:>14} {s:>10.3f} {p:>10.3f} {s / p:>7.1f} {1e6 * p / n:>11.3f}")


if __name__ == "__main__":
    main()
