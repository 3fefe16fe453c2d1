#!/usr/bin/env python3
"""Means over many series of a forecast bench's JSON lines, one row per implementation and
method family (the text before ':' of `method`), as a Markdown table.

    python scripts/bench_summary.py ours.jsonl ref.jsonl ...

Columns: series, mean sMAPE, mean MASE, median sMAPE, and the mean and total seconds.
"""
import json
import statistics
import sys
from collections import OrderedDict


def main():
    groups = OrderedDict()
    for path in sys.argv[1:]:
        with open(path) as f:
            for line in f:
                if not line.strip():
                    continue
                row = json.loads(line)
                family = row["method"].split(":")[0] if row["impl"] != "ours" else "model selection"
                groups.setdefault((row["bench"], row["impl"], family), []).append(row)
    print("\n| bench | impl | method | series | mean sMAPE | mean MASE | median sMAPE | mean s | total s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (bench, impl, family), rows in groups.items():
        smapes = [r["smape"] for r in rows]
        mases = [r["mase"] for r in rows if r.get("mase") == r.get("mase")]
        secs = [r["seconds"] for r in rows]
        print(f"| {bench} | {impl} | {family} | {len(rows)} | {statistics.fmean(smapes):.2f} | "
              f"{statistics.fmean(mases):.3f} | {statistics.median(smapes):.2f} | "
              f"{statistics.fmean(secs):.4f} | {sum(secs):.2f} |")


if __name__ == "__main__":
    main()
