#!/usr/bin/env python3
"""Reference side of the churn benchmark: scikit-learn on the same train/test split as ours.

    python scripts/bench_churn.py --train TRAIN.csv --test TEST.csv --target churn [--fold K]
        [--json-out F]

Fits on TRAIN and scores TEST (the Rust `churn` bench writes both CSVs). The target column
holds yes/no (also true/false, y/n, 1/0, any case); "yes" is the positive class. Every other
column is a feature. Reading mirrors our encoder (mesh-numeric `tabular`): fields are trimmed,
an empty field is missing, and a column is numeric when every non-missing value parses as a
finite number, categorical otherwise.

Models:
  (a) Pipeline(ColumnTransformer, LogisticRegression(C=1.0, max_iter=5000)), the mirror of our
      encoder:
        numeric:     SimpleImputer(median) + StandardScaler (population std), plus a 0/1
                     MissingIndicator for the columns with missing training values
                     (our `<column>=missing`; nothing is added when there are none);
        categorical: OneHotEncoder(handle_unknown="ignore", min_frequency=5, max_categories=51):
                     a level seen >= 5 times gets its own column (at most 50, ours' MAX_LEVELS),
                     rarer levels share the infrequent column, unseen levels set nothing.
      Known difference: a missing categorical value is a level of its own here (ours sets no
      indicator); a tie at the 50-level cap may keep a different level.
  (b) HistGradientBoostingClassifier(random_state=0, categorical_features="from_dtype"), text
      columns as pandas `category` with the training levels (unseen test levels -> missing).

Prints one JSON line per model (also written to --json-out):
  {"bench": "churn", "impl": "scikit-learn", "model": "...", "auc": ..., "seconds": ...,
   "fit_score_seconds": ..., "fold": K}   ("fold" only when --fold is given)
`auc` is the test ROC-AUC of P(yes); `seconds` (= `fit_score_seconds`) is the median wall time
of fit + predict_proba over --runs runs (default 3).
"""
import argparse
import json
import statistics
import sys
import time

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

MIN_LEVEL_COUNT = 5  # mesh-numeric tabular::MIN_LEVEL_COUNT
MAX_LEVELS = 50  # mesh-numeric tabular::MAX_LEVELS

POSITIVE = {"yes", "true", "1", "y", "1.0"}
NEGATIVE = {"no", "false", "0", "n", "0.0"}


def read(path):
    """CSV as strings, trimmed; empty fields become NaN (missing)."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    df = df.apply(lambda c: c.str.strip())
    return df.replace("", np.nan)


def target(series, path):
    low = series.str.lower()
    bad = sorted(set(low.dropna()) - POSITIVE - NEGATIVE)
    if bad or low.isna().any():
        sys.exit(f"{path}: target values must be yes/no, got {bad[:5] or 'missing values'}")
    return low.isin(POSITIVE).to_numpy()


def is_numeric(col):
    present = col.dropna()
    parsed = pd.to_numeric(present, errors="coerce")
    return bool(np.isfinite(parsed.to_numpy(dtype=float)).all())


def timed(fn, runs):
    times, result = [], None
    for _ in range(runs):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return result, statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--runs", type=int, default=3, help="timed runs per model (median)")
    ap.add_argument("--fold", type=int, help="which fold of the split this is (echoed in the lines)")
    ap.add_argument("--json-out", help="also write the JSON lines to this file")
    args = ap.parse_args()

    train, test = read(args.train), read(args.test)
    for name, df, path in [("train", train, args.train), ("test", test, args.test)]:
        if args.target not in df.columns:
            sys.exit(f"{path}: no column {args.target!r}")
    y_train = target(train.pop(args.target), args.train)
    y_test = target(test.pop(args.target), args.test)
    features = list(train.columns)
    missing = [c for c in features if c not in test.columns]
    if missing:
        sys.exit(f"{args.test}: missing feature columns {missing}")
    test = test[features]

    numeric = [c for c in features if is_numeric(train[c])]
    categorical = [c for c in features if c not in numeric]
    with_missing = [c for c in numeric if train[c].isna().any()]
    for c in numeric:
        # A test value that does not parse counts as missing (ours: imputed with the median).
        train[c] = pd.to_numeric(train[c], errors="coerce").astype(float)
        test[c] = pd.to_numeric(test[c], errors="coerce").astype(float)
    print(f"{len(train)} train / {len(test)} test rows; {len(numeric)} numeric, "
          f"{len(categorical)} categorical columns; positives {int(y_train.sum())} / "
          f"{int(y_test.sum())}", file=sys.stderr)

    # (a) logistic regression, encoder mirror.
    transformers = [
        ("num", Pipeline([("impute", SimpleImputer(strategy="median")),
                          ("scale", StandardScaler())]), numeric),
        ("cat", OneHotEncoder(handle_unknown="ignore", min_frequency=MIN_LEVEL_COUNT,
                              max_categories=MAX_LEVELS + 1), categorical),
    ]
    if with_missing:
        transformers.append(("missing", MissingIndicator(features="missing-only",
                                                         error_on_new=False), with_missing))
    def logistic():
        model = Pipeline([
            ("encode", ColumnTransformer(transformers)),
            ("logistic", LogisticRegression(C=1.0, max_iter=5000)),
        ]).fit(train, y_train)
        return model.predict_proba(test)[:, 1]

    # (b) gradient boosting with native categorical splits; levels fixed from the training rows.
    train_hgb, test_hgb = train.copy(), test.copy()
    for c in categorical:
        dtype = pd.CategoricalDtype(sorted(train[c].dropna().unique()))
        train_hgb[c] = train[c].astype(dtype)
        test_hgb[c] = test[c].astype(dtype)

    def hgb():
        model = HistGradientBoostingClassifier(random_state=0, categorical_features="from_dtype")
        return model.fit(train_hgb, y_train).predict_proba(test_hgb)[:, 1]

    lines = []
    for name, fn in [("LogisticRegression(C=1, lbfgs) + encoder mirror", logistic),
                     ("HistGradientBoostingClassifier (native categorical)", hgb)]:
        scores, secs = timed(fn, max(args.runs, 1))
        line = {"bench": "churn", "impl": "scikit-learn", "model": name,
                "auc": float(roc_auc_score(y_test, scores)), "seconds": secs,
                "fit_score_seconds": secs}
        if args.fold is not None:
            line["fold"] = args.fold
        print(json.dumps(line), flush=True)
        lines.append(line)
    if args.json_out:
        with open(args.json_out, "w") as f:
            f.writelines(json.dumps(line) + "\n" for line in lines)


if __name__ == "__main__":
    main()
