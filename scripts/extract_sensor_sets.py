#!/usr/bin/env python3
"""Extracts two labelled sensor series from the aeon==1.6.0 wheel as feature tables for the
isolation-forest benchmark.

    python scripts/extract_sensor_sets.py --out DIR [--wheel aeon-1.6.0-py3-none-any.whl]

Downloads the wheel with pip (python -m pip download --no-deps --only-binary=:all:
aeon==1.6.0), checks its SHA-256, and writes into DIR, from each series' TEST file
(`timestamp,value,is_anomaly`; the ECG file names its one value column `value-0`):

- internal-bleeding.csv: KDD-TSAD 135 UCR Anomaly InternalBleeding16 (7,501 readings);
- ecg.csv: UnitTest ecg-diff-count-3 (10,000 readings).

Each row is one reading as three features the two forests both see, computed here once:
the value, its change from the previous reading (0 for the first), and its distance from
the mean of the 10 readings before it (0 for the first); then the label (1 = anomaly).
"""
import argparse
import csv
import io
import os
import sys

from wheels import read_members

WHEEL = "aeon==1.6.0"
WHEEL_SHA256 = "d05227086706f80111ac5fee8de4d5d3115bb3bcfd1c786c8629393055816409"
SETS = {
    "internal-bleeding.csv":
        "aeon/datasets/data/KDD-TSAD_135/135_UCR_Anomaly_InternalBleeding16_TEST.csv",
    "ecg.csv": "aeon/datasets/data/UnitTest/ecg-diff-count-3_TEST.csv",
}
WINDOW = 10


def features(raw, name):
    """The feature table (CSV text) of one `timestamp,value,is_anomaly` series."""
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8"))))
    column = next((c for c in ("value", "value-0") if rows and c in rows[0]), None)
    if column is None or "is_anomaly" not in rows[0]:
        sys.exit(f"{name}: expected a value column (value or value-0) and is_anomaly")
    values = [float(r[column]) for r in rows]
    labels = [int(float(r["is_anomaly"])) for r in rows]
    if set(labels) != {0, 1}:
        sys.exit(f"{name}: labels {sorted(set(labels))}, expected 0 and 1")
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["value", "change", "from_recent_mean", "anomaly"])
    for i, (v, label) in enumerate(zip(values, labels)):
        recent = values[max(0, i - WINDOW):i]
        change = v - values[i - 1] if i else 0.0
        from_mean = v - sum(recent) / len(recent) if recent else 0.0
        w.writerow([repr(v), repr(change), repr(from_mean), label])
    print(f"{name}: {len(values)} readings, {sum(labels)} anomalous", file=sys.stderr)
    return out.getvalue()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--wheel", help="use this aeon 1.6.0 wheel instead of downloading")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    data = read_members(WHEEL, WHEEL_SHA256, list(SETS.values()), args.wheel)
    tables = {out: features(data[member], out) for out, member in SETS.items()}
    for out, text in tables.items():
        with open(os.path.join(args.out, out), "w", newline="") as f:
            f.write(text)
    print(f"wrote {', '.join(tables)} to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
