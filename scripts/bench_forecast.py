#!/usr/bin/env python3
"""Reference side of the forecast benchmark: statsforecast AutoETS and statsmodels ETSModel.

    python scripts/bench_forecast.py --data-dir DIR [--runs 5] [--skip-auto] [--write-only]
                                     [--airline PATH] [--json-out F]
    python scripts/bench_forecast.py --series-dir DIR ...   (an index.json already written)

1. Writes the series into DIR, for our Rust `forecast` bench to read:
   - DIR/<name>.csv: header `value`, then one value per line (oldest first, shortest
     round-trip float text);
   - DIR/index.json: {"series": [{"name", "file", "n", "holdout", "season_length",
     "source", "description"}, ...]}; `file` is relative to DIR, `season_length` 0 means
     non-seasonal, the last `holdout` points are the test window.
   Series (nothing synthesised; the same data and holdouts as the earlier scratch benchmark):
   - airpassengers: river 0.26.1's airline-passengers.csv (scripts/extract_shuttle.py), read
     from --airline, default DIR/airline-passengers.csv, else DIR/../airline-passengers.csv;
   - co2: statsmodels co2 (weekly), monthly means ("MS"), from 1965-01 (no empty month);
   - nile: statsmodels nile volume, annual;
   - realgdp: statsmodels macrodata realgdp, quarterly;
   - elnino: statsmodels elnino, the 12 monthly columns read row by row.
2. Fits on all but the last `holdout` points and forecasts `holdout` ahead with
   - statsforecast AutoETS(season_length=max(m, 1)) (model chosen by AICc),
   - statsmodels ETSModel fixed: (M,A,M) with seasonal_periods=m if m >= 2, else (M,A,N)
     (A for M when a value is <= 0),
   - statsmodels ETSModel auto (unless --skip-auto): min AIC over error {A,M} x trend
     {N,A,Ad} x season {N,A,M} (M parts only for positive data, season only if m >= 2),
   and prints (and writes to --json-out) one JSON line per series and method:
     {"bench": "forecast", "series": "airpassengers", "impl": "statsforecast",
      "method": "AutoETS: ETS(M,N,M)", "mape": ..., "smape": ..., "seconds": ...}
   With --origins K (K > 1), each series is scored on its last K windows of `holdout` points
   (the test window, then the ones `holdout`, 2 `holdout`, ... points earlier), each forecast
   from everything before it; one "forecast_rolling" line per series and method with the
   mean MAPE / sMAPE, "smape_by_origin" (newest first), "methods" and the mean seconds of one
   fit + forecast (no warm-up, one run each).
   With --theta, statsforecast AutoTheta(season_length=max(m, 1)) too.
   MAPE = 100 mean |a - f| / |a|; sMAPE = 100 mean 2 |a - f| / (|a| + |f|) (a term is 0 when
   both are 0); MASE = mean |a - f| over the training part's mean absolute naive error at lag
   max(m, 1). `seconds` is fit + forecast wall time, the median of --runs runs after one
   warm-up (the auto search: a single run, no warm-up).
"""
import argparse
import json
import os
import statistics
import sys
import time
import warnings

import numpy as np
import pandas as pd
import statsmodels.api as sm
from statsforecast.models import AutoETS, AutoTheta
from statsmodels.tsa.exponential_smoothing.ets import ETSModel

# name, season length (0 = none), holdout, source, description
SERIES = [
    ("airpassengers", 12, 12, "river 0.26.1 wheel: river/datasets/airline-passengers.csv",
     "monthly airline passengers (thousands) 1949-1960"),
    ("co2", 12, 24, "statsmodels 0.15.0 datasets.co2, monthly mean (resample MS) from 1965-01",
     "Mauna Loa CO2 ppm, monthly mean of weekly data 1965-01..2001-12"),
    ("nile", 0, 10, "statsmodels 0.15.0 datasets.nile (volume)",
     "annual Nile flow at Aswan 1871-1970 (1e8 m^3)"),
    ("realgdp", 4, 8, "statsmodels 0.15.0 datasets.macrodata (realgdp)",
     "US real GDP, quarterly 1959Q1-2009Q3 (bn chained 2005 USD)"),
    ("elnino", 12, 12, "statsmodels 0.15.0 datasets.elnino (JAN..DEC by year)",
     "monthly Nino sea-surface temperature (C) 1950-2010"),
]


def airline_path(data_dir, given):
    if given:
        return given
    for p in [os.path.join(data_dir, "airline-passengers.csv"),
              os.path.join(os.path.dirname(os.path.abspath(data_dir)), "airline-passengers.csv")]:
        if os.path.exists(p):
            return p
    sys.exit(f"no airline-passengers.csv in {data_dir} or its parent: "
             "run scripts/extract_shuttle.py --out DIR first, or pass --airline")


def load(airline):
    """The series, as in the scratch benchmark (values only)."""
    out = {}
    ap = pd.read_csv(airline)
    out["airpassengers"] = ap["passengers"].astype(float)

    co2 = sm.datasets.co2.load_pandas().data["co2"].resample("MS").mean()
    co2 = co2["1965-01-01":]
    assert not co2.isna().any(), "co2 has an empty month after 1965-01"
    out["co2"] = co2

    out["nile"] = sm.datasets.nile.load_pandas().data["volume"]
    out["realgdp"] = sm.datasets.macrodata.load_pandas().data["realgdp"]

    el = sm.datasets.elnino.load_pandas().data
    months = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    out["elnino"] = pd.Series([getattr(r, m) for r in el.itertuples() for m in months])

    series = {}
    for name, values in out.items():
        y = np.asarray(values, dtype=float)
        assert np.all(np.isfinite(y)), name
        series[name] = y
    return series


def read(data_dir):
    """The series and rows of an index.json written by `write` (for --series-dir)."""
    with open(os.path.join(data_dir, "index.json")) as f:
        index = json.load(f)["series"]
    series = {e["name"]: pd.read_csv(os.path.join(data_dir, e["file"]))["value"].to_numpy(float)
              for e in index}
    rows = [(e["name"], e["season_length"], e["holdout"], e["source"], e["description"])
            for e in index]
    return series, rows


def write(data_dir, series, rows=SERIES):
    """`rows`: (name, season length, holdout, source, description) of each series to write."""
    os.makedirs(data_dir, exist_ok=True)
    index = []
    for name, m, h, source, description in rows:
        y = series[name]
        with open(os.path.join(data_dir, f"{name}.csv"), "w") as f:
            f.write("value\n")
            f.writelines(f"{float(v)!r}\n" for v in y)
        index.append({"name": name, "file": f"{name}.csv", "n": len(y), "holdout": h,
                      "season_length": m, "source": source, "description": description})
    with open(os.path.join(data_dir, "index.json"), "w") as f:
        json.dump({"series": index}, f, indent=1)
        f.write("\n")


def mape(a, f):
    return float(100 * np.mean(np.abs((a - f) / a)))


def smape(a, f):
    d = np.abs(a) + np.abs(f)
    t = np.where(d == 0, 0.0, 2 * np.abs(a - f) / np.where(d == 0, 1, d))
    return float(100 * np.mean(t))


def mase(train, a, f, m):
    """Mean absolute error over the in-sample mean absolute seasonal (m >= 2) or one-step
    naive error of the training part (Hyndman and Koehler, 2006)."""
    lag = max(m, 1)
    scale = float(np.mean(np.abs(train[lag:] - train[:-lag])))
    return float(np.mean(np.abs(a - f)) / scale) if scale > 0 else float("nan")


def timed(fn, runs):
    if runs > 1:
        fn()  # warm-up (numba compiles statsforecast's ETS on first use)
    times, res = [], None
    for _ in range(runs):
        t = time.perf_counter()
        res = fn()
        times.append(time.perf_counter() - t)
    return res, statistics.median(times)


def sf_autoets(y, m, h):
    model = AutoETS(season_length=max(m, 1)).fit(y)
    return np.asarray(model.predict(h)["mean"]), f"AutoETS: {model.model_['method']}"


def sf_autotheta(y, m, h):
    model = AutoTheta(season_length=max(m, 1)).fit(y)
    return np.asarray(model.predict(h)["mean"]), "AutoTheta"


def sm_ets(y, m, h, error, trend, damped, seasonal):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = ETSModel(
            y, error=error, trend=trend, damped_trend=damped, seasonal=seasonal,
            seasonal_periods=m if seasonal else None,
        ).fit(disp=False)
    return np.asarray(res.forecast(h)), res.aic


def sm_fixed(y, m, h):
    kind = "mul" if np.all(y > 0) else "add"  # multiplicative parts need positive data
    seasonal = kind if m >= 2 else None
    f, _ = sm_ets(y, m, h, kind, "add", False, seasonal)
    return f, f"ETSModel fixed: ETS({kind[0].upper()},A,{seasonal[0].upper() if seasonal else 'N'})"


def sm_auto(y, m, h):
    pos = bool(np.all(y > 0))
    best = None
    for err in ["add", "mul"] if pos else ["add"]:
        for trend, damped in [(None, False), ("add", False), ("add", True)]:
            for seas in ([None, "add", "mul"] if pos else [None, "add"]) if m >= 2 else [None]:
                try:
                    f, aic = sm_ets(y, m, h, err, trend, damped, seas)
                except Exception:  # noqa: BLE001 - some combinations fail to fit
                    continue
                if np.all(np.isfinite(f)) and np.isfinite(aic) and (best is None or aic < best[1]):
                    name = (f"ETS({err[0].upper()},"
                            f"{'N' if trend is None else 'A' + ('d' if damped else '')},"
                            f"{'N' if seas is None else seas[0].upper()})")
                    best = (f, aic, name)
    return best[0], f"ETSModel auto (min AIC): {best[2]}"


def rolling(name, y, m, h, origins, methods, bench):
    """Rolling-origin lines: windows of h points ending at the end and h, 2h, ... earlier."""
    lines = []
    for impl, fn, _ in methods:
        mapes, smapes, names, secs = [], [], [], 0.0
        for k in range(origins):
            cut = len(y) - (k + 1) * h
            train, test = y[:cut], y[cut:cut + h]
            t = time.perf_counter()
            f, method = fn(train, m, h)
            secs += time.perf_counter() - t
            mapes.append(mape(test, f))
            smapes.append(smape(test, f))
            names.append(method)
        line = {"bench": bench, "series": name, "impl": impl,
                "method": names[0].split(":")[0], "origins": origins,
                "mape": float(np.mean(mapes)), "smape": float(np.mean(smapes)),
                "seconds": secs / origins, "smape_by_origin": smapes, "methods": names}
        print(json.dumps(line), flush=True)
        lines.append(line)
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", help="where the series CSVs and index.json go")
    ap.add_argument("--series-dir", help="run on the index.json already in this folder instead "
                    "(e.g. scripts/forecast_validation_data.py's); writes nothing there")
    ap.add_argument("--airline", help="airline-passengers.csv from the river wheel")
    ap.add_argument("--runs", type=int, default=5, help="timed runs per method (median)")
    ap.add_argument("--skip-auto", action="store_true", help="skip the statsmodels AIC search")
    ap.add_argument("--theta", action="store_true", help="also run statsforecast AutoTheta")
    ap.add_argument("--write-only", action="store_true", help="write the data, run nothing")
    ap.add_argument("--json-out", help="also write the JSON lines to this file")
    ap.add_argument("--bench-name", help="the lines' \"bench\" field (default forecast, or "
                    "forecast_rolling with --origins)")
    ap.add_argument("--origins", type=int, default=1,
                    help="K > 1: score each method on the last K windows of `holdout` points "
                         "(rolling origin, one forecast_rolling line per series and method)")
    args = ap.parse_args()

    if args.series_dir:
        series, rows = read(args.series_dir)
    elif args.data_dir:
        series, rows = load(airline_path(args.data_dir, args.airline)), SERIES
        write(args.data_dir, series)
        print(f"wrote {len(SERIES)} series and index.json to {args.data_dir}", file=sys.stderr)
    else:
        ap.error("--data-dir or --series-dir is required")
    if args.write_only:
        return
    methods = [("statsforecast", sf_autoets, args.runs), ("statsmodels", sm_fixed, args.runs)]
    if args.theta:
        methods.insert(1, ("statsforecast", sf_autotheta, args.runs))
    if not args.skip_auto:
        methods.append(("statsmodels", sm_auto, 1))
    lines = []
    for name, m, h, _, _ in rows:
        y = series[name]
        if args.origins > 1:
            lines.extend(rolling(name, y, m, h, args.origins, methods,
                                 args.bench_name or "forecast_rolling"))
            continue
        train, test = y[:-h], y[-h:]
        for impl, fn, runs in methods:
            (f, method), secs = timed(lambda: fn(train, m, h), max(runs, 1))
            line = {"bench": args.bench_name or "forecast", "series": name, "impl": impl,
                    "method": method,
                    "mape": mape(test, f), "smape": smape(test, f),
                    "mase": mase(train, test, f, m), "seconds": secs}
            print(json.dumps(line), flush=True)
            lines.append(line)
    if args.json_out:
        with open(args.json_out, "w") as f:
            f.writelines(json.dumps(line) + "\n" for line in lines)


if __name__ == "__main__":
    main()
