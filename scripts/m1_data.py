#!/usr/bin/env python3
"""Writes the 181 yearly series of the M1 competition (as the aeon==1.6.0 wheel ships them)
in the layout the forecast benchmarks read, with the competition's horizon as the test window.

    python scripts/m1_data.py --out DIR [--wheel aeon-1.6.0-py3-none-any.whl]

Downloads the wheel with pip (python -m pip download --no-deps --only-binary=:all:
aeon==1.6.0), checks its SHA-256, reads aeon/datasets/data/m1_yearly_dataset/
m1_yearly_dataset.tsf (`name:start:v1,v2,...` lines after `@data`; `@horizon 6`) and writes
DIR/<name>.csv (header `value`) and DIR/index.json ({"series": [{"name", "file", "n",
"holdout", "season_length", "source", "description"}]}; holdout = the horizon, season 0).
None of these series is used to choose anything in the forecaster: they are held out.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from extract_sensor_sets import WHEEL, WHEEL_SHA256  # noqa: E402
from wheels import read_members  # noqa: E402

MEMBER = "aeon/datasets/data/m1_yearly_dataset/m1_yearly_dataset.tsf"


def parse(text):
    """(horizon, [(name, values)]) of a .tsf file."""
    horizon, series, data = None, [], False
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.lower().startswith("@horizon"):
            horizon = int(line.split()[1])
        elif line.lower() == "@data":
            data = True
        elif data:
            name, _start, values = line.split(":")
            series.append((name, [float(v) for v in values.split(",")]))
    if horizon is None or not series:
        sys.exit(f"{MEMBER}: no @horizon or no series")
    return horizon, series


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--wheel", help="use this aeon 1.6.0 wheel instead of downloading")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    data = read_members(WHEEL, WHEEL_SHA256, [MEMBER], args.wheel)
    horizon, series = parse(data[MEMBER].decode("latin-1"))
    rows = []
    for name, values in series:
        with open(os.path.join(args.out, f"{name}.csv"), "w") as f:
            f.write("value\n" + "".join(f"{v!r}\n" for v in values))
        rows.append({"name": name, "file": f"{name}.csv", "n": len(values), "holdout": horizon,
                     "season_length": 0, "source": "aeon 1.6.0, M1 yearly",
                     "description": f"M1 yearly series {name}"})
    with open(os.path.join(args.out, "index.json"), "w") as f:
        json.dump({"series": rows}, f, indent=1)
    lengths = sorted(len(v) for _, v in series)
    print(f"wrote {len(rows)} M1 yearly series (horizon {horizon}; {lengths[0]}-{lengths[-1]} "
          f"values) to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
