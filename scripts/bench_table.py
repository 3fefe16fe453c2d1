#!/usr/bin/env python3
"""Merges benchmark JSON lines (ours and the references) into Markdown tables on stdout.

    python scripts/bench_table.py OURS.jsonl REFS.jsonl...

Input: one JSON object per line; blank lines, lines that are not JSON objects with a "bench"
field, and summary lines ("summary": true) are skipped. The lines look like

  {"bench":"forecast","series":"airpassengers","impl":"ours","method":"...","mape":..,"smape":..,"seconds":..}
  {"bench":"iforest","impl":"ours","seed":0,"auc":..,"seconds":..}
  {"bench":"churn","impl":"ours","model":"logistic (Newton, L2 C=1)","auc":..,"seconds":..}

with "impl" one of ours / scikit-learn / statsforecast / statsmodels; any other bench
(e.g. federated) works the same way.

Output: one table per bench, in order of first appearance, with one row per line.
- Columns: the key fields present (series, model, impl, method, seed), any other text
  field, then the metrics (auc, mape, smape, seconds first, then any other scalar field in
  order of appearance).
  Nested values, "bench", "summary" and "fit_score_seconds" (an alias of "seconds") are
  left out; a field a line lacks is blank.
- Rows: grouped by series (or, without one, by model) in order of first appearance, "ours"
  first within a group; otherwise in input order.
- Benches with a "seed" (or "fold") field get, after each impl's (and series/model/method's)
  seeded rows, a row "mean of N" with the mean of each numeric metric present on all of them.
Numbers: 3 significant digits below 0.01, 4 decimals below 1, else 3 decimals (4 significant
digits from 1e6).
"""
import json
import math
import sys
from collections import OrderedDict

KEYS = ["series", "model", "impl", "method", "seed", "fold"]
# Keys that number repeats of one measurement (seeds, cross-validation folds): their rows get
# a mean row.
REPEATS = ["seed", "fold"]
METRICS = ["auc", "mape", "smape", "seconds"]
HIDDEN = {"bench", "summary", "fit_score_seconds"}


def read(paths):
    lines = []
    for path in paths:
        with open(path) as f:
            for n, text in enumerate(f, 1):
                text = text.strip()
                if not text:
                    continue
                try:
                    obj = json.loads(text)
                except json.JSONDecodeError:
                    print(f"{path}:{n}: not JSON, skipped", file=sys.stderr)
                    continue
                if isinstance(obj, dict) and "bench" in obj and not obj.get("summary"):
                    lines.append(obj)
    return lines


def scalar(v):
    return v is None or isinstance(v, (str, int, float, bool))


def number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def fmt(v):
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        if abs(v) < 0.01:
            return f"{v:.3g}"
        if abs(v) < 1:
            return f"{v:.4f}"
        if abs(v) < 1e6:
            return f"{v:.3f}"
        return f"{v:.4g}"
    return str(v).replace("|", "\\|").replace("\n", " ")


def columns(rows):
    present = OrderedDict()
    for r in rows:
        for k, v in r.items():
            if k not in HIDDEN and scalar(v):
                present[k] = present.get(k, False) or isinstance(v, str)
    keys = [k for k in KEYS if k in present]
    metrics = [k for k in METRICS if k in present]
    rest = [k for k in present if k not in keys and k not in metrics]
    text = [k for k in rest if present[k]]
    return keys + text + metrics + [k for k in rest if not present[k]]


def order(rows):
    group_key = "series" if any("series" in r for r in rows) else (
        "model" if any("model" in r for r in rows) and not any("seed" in r for r in rows)
        else None)
    if group_key is None:
        return rows
    first = {}
    for r in rows:
        first.setdefault(str(r.get(group_key)), len(first))
    indexed = list(enumerate(rows))
    indexed.sort(key=lambda p: (first[str(p[1].get(group_key))],
                                p[1].get("impl") != "ours", p[0]))
    return [r for _, r in indexed]


def with_means(rows, cols):
    """Adds a mean row after each group of repeated rows (group: every key column but the
    repeat key, `seed` or `fold`)."""
    repeat = next((k for k in REPEATS if any(k in r for r in rows)), None)
    if repeat is None:
        return rows
    group_cols = [k for k in KEYS if k != repeat and k in cols]
    group = lambda r: tuple(str(r.get(k)) for k in group_cols)  # noqa: E731
    groups = OrderedDict()
    for r in rows:
        if repeat in r:
            groups.setdefault(group(r), []).append(r)
    last = {id(members[-1]): members for members in groups.values()}
    out = []
    for r in rows:
        out.append(r)
        members = last.get(id(r))
        if members is None:
            continue
        mean = {k: members[0].get(k) for k in group_cols}
        mean[repeat] = f"mean of {len(members)}"
        for c in cols:
            vals = [m[c] for m in members if number(m.get(c))]
            if c not in KEYS and vals and len(vals) == len(members):
                mean[c] = sum(vals) / len(vals)
        out.append(mean)
    return out


def table(bench, rows):
    rows = order(rows)
    cols = columns(rows)
    rows = with_means(rows, cols)
    out = [f"### {bench}", "", "| " + " | ".join(cols) + " |",
           "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        out.append("| " + " | ".join(fmt(r.get(c)) for c in cols) + " |")
    return "\n".join(out)


def main():
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0 if len(sys.argv) >= 2 else 2)
    lines = read(sys.argv[1:])
    benches = OrderedDict()
    for line in lines:
        benches.setdefault(str(line["bench"]), []).append(line)
    if not benches:
        sys.exit("no benchmark lines found")
    print("\n\n".join(table(b, rows) for b, rows in benches.items()))


if __name__ == "__main__":
    main()
