#!/usr/bin/env python3
"""Extracts the benchmark data shipped in the river==0.26.1 wheel.

    python scripts/extract_shuttle.py --out DIR [--wheel river-0.26.1-....whl]

Downloads the wheel with pip (python -m pip download --no-deps --only-binary=:all:
river==0.26.1, pinned to the cp311 manylinux_2_28_x86_64 build so that the SHA-256 below
holds whatever Python runs this), checks its SHA-256, and writes into DIR:

- shuttle.csv: river/datasets/shuttle.csv.gz gunzipped. ODDS Shuttle: 49,097 rows, header
  f1..f9,anomaly; nine integer sensor readings, last column 1 = anomaly (3,511 rows), 0 = normal.
  The label convention is checked (last column 0/1, 1 the minority); a file with the original
  UCI classes (1..7, class 1 "Rad Flow" normal) would be rewritten to 1 = anomaly.
- airline-passengers.csv: river/datasets/airline-passengers.csv as is ("month","passengers";
  144 monthly values 1949-01..1960-12).

With --wheel, uses that file instead of downloading (same checksum check).
"""
import argparse
import csv
import gzip
import io
import os
import sys

from wheels import read_members

WHEEL = "river==0.26.1"
WHEEL_SHA256 = "6a11e1a9749beec3ea138efeb0205b2c5cea8d424e9deee306c8980faec01bef"
PIN = ["--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
       "--platform", "manylinux_2_28_x86_64"]
SHUTTLE = "river/datasets/shuttle.csv.gz"
AIRLINE = "river/datasets/airline-passengers.csv"


def shuttle_csv(raw):
    """Returns the CSV text with the last column 1 = anomaly, after checking the convention."""
    text = raw.decode("utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    header, body = rows[0], [r for r in rows[1:] if r]
    if len({len(r) for r in body}) != 1 or len(body[0]) != len(header):
        sys.exit("shuttle: ragged rows")
    labels = [float(r[-1]) for r in body]
    values = sorted(set(labels))
    counts = {v: labels.count(v) for v in values}
    if values == [0.0, 1.0] and counts[1.0] < counts[0.0]:
        # Already 1 = anomaly (the minority); river's file, header ...,anomaly.
        print(f"shuttle: {len(body)} rows x {len(header) - 1} features, last column "
              f"{header[-1]!r}: {counts[1.0]} anomalies (1), {counts[0.0]} normal (0); kept as is",
              file=sys.stderr)
        return text if text.endswith("\n") else text + "\n"
    if set(values) <= {1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0} and counts.get(1.0, 0) > len(body) / 2:
        # Original UCI classes: 1 (Rad Flow) normal, the rest anomalies (ODDS drops class 4).
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(header[:-1] + ["anomaly"])
        for r in body:
            w.writerow(r[:-1] + ["0" if float(r[-1]) == 1.0 else "1"])
        print(f"shuttle: relabelled UCI classes {counts} to 1 = anomaly", file=sys.stderr)
        return out.getvalue()
    sys.exit(f"shuttle: unknown label convention in column {header[-1]!r}: {counts}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--wheel", help="use this river 0.26.1 wheel instead of downloading")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    data = read_members(WHEEL, WHEEL_SHA256, [SHUTTLE, AIRLINE], args.wheel, PIN)
    shuttle, airline = gzip.decompress(data[SHUTTLE]), data[AIRLINE]
    with open(os.path.join(args.out, "shuttle.csv"), "w", newline="") as f:
        f.write(shuttle_csv(shuttle))
    with open(os.path.join(args.out, "airline-passengers.csv"), "wb") as f:
        f.write(airline)
    print(f"wrote {args.out}/shuttle.csv and {args.out}/airline-passengers.csv", file=sys.stderr)


if __name__ == "__main__":
    main()
