#!/usr/bin/env bash
# Numeric benchmarks, ours and the Python references on the same data and machine, one after
# the other; prints one merged Markdown table per bench (also saved to target/bench/numeric.md).
#   scripts/bench_numeric.sh
# - forecast: statsforecast AutoETS, statsmodels ETSModel (scripts/bench_forecast.py) vs ours,
#             on each series' test window, on its last 5 windows (rolling origin), and on the
#             validation set of scripts/forecast_validation_data.py;
# - iforest:  scikit-learn IsolationForest on ODDS Shuttle (scripts/bench_iforest.py) vs ours;
# - churn:    scikit-learn LogisticRegression / HistGradientBoosting (scripts/bench_churn.py) vs
#             ours, on the train/test split our churn bench writes;
# - federated: ours only (it includes the centralised baselines).
# The reference venv (target/bench/venv-ref, about 400 MB) is created on first use with the
# pinned versions below; the data come from the river 0.26.1 wheel (scripts/extract_shuttle.py,
# SHA-256 checked) and from statsmodels' bundled data sets. Paths passed to `cargo bench` are
# absolute because cargo runs a bench binary in its package directory (benches/).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
out="$root/target/bench"
venv="$out/venv-ref"
data="$out/data"
pins="scikit-learn==1.9.1 statsmodels==0.15.0 statsforecast==2.1.1"
mkdir -p "$out"

# Reference venv, once (redone if the pins change or an install did not finish).
if [ "$(cat "$venv/.pins" 2>/dev/null || true)" != "$pins" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  # shellcheck disable=SC2086
  "$venv/bin/pip" install -q --disable-pip-version-check $pins
  echo "$pins" > "$venv/.pins"
fi
py="$venv/bin/python"

if [ ! -f "$data/shuttle.csv" ] || [ ! -f "$data/airline-passengers.csv" ]; then
  "$py" scripts/extract_shuttle.py --out "$data"
fi

rm -f "$out"/ours.jsonl "$out"/ours-*.jsonl "$out"/ref-*.jsonl

# forecast: the Python side writes the series and index.json that ours reads.
"$py" scripts/bench_forecast.py --data-dir "$data/forecast" --json-out "$out/ref-forecast.jsonl"
cargo bench --locked -p mesh-benches --bench forecast -- \
  --index "$data/forecast/index.json" --jsonl "$out/ours-forecast.jsonl"

# forecast, rolling origin: each series' last 5 windows (the test window and 4 before it).
"$py" scripts/bench_forecast.py --series-dir "$data/forecast" --origins 5 --skip-auto \
  --json-out "$out/ref-forecast-rolling.jsonl"
cargo bench --locked -p mesh-benches --bench forecast -- \
  --index "$data/forecast/index.json" --origins 5 --jsonl "$out/ours-forecast-rolling.jsonl"

# forecast, validation set (never the test windows): where selection changes are judged.
"$py" scripts/forecast_validation_data.py --data-dir "$data/forecast-validation" \
  --airline "$data/airline-passengers.csv"
"$py" scripts/bench_forecast.py --series-dir "$data/forecast-validation" --runs 1 --skip-auto \
  --bench-name forecast_validation --json-out "$out/ref-forecast-validation.jsonl"
cargo bench --locked -p mesh-benches --bench forecast -- \
  --index "$data/forecast-validation/index.json" --bench-name forecast_validation \
  --jsonl "$out/ours-forecast-validation.jsonl"

# iforest
"$py" scripts/bench_iforest.py --csv "$data/shuttle.csv" --seeds 5 --json-out "$out/ref-iforest.jsonl"
cargo bench --locked -p mesh-benches --bench iforest -- \
  --csv "$data/shuttle.csv" --jsonl "$out/ours.jsonl"

# churn: ours first, it writes train.csv / test.csv.
cargo bench --locked -p mesh-benches --bench churn -- \
  --out-dir "$out/churn" --jsonl "$out/ours-churn.jsonl"
"$py" scripts/bench_churn.py --train "$out/churn/train.csv" --test "$out/churn/test.csv" \
  --target churn --json-out "$out/ref-churn.jsonl"

# federated: ours only.
cargo bench --locked -p mesh-benches --bench federated -- --jsonl "$out/ours-federated.jsonl"

"$py" scripts/bench_table.py "$out/ours.jsonl" "$out/ours-forecast.jsonl" \
  "$out/ours-forecast-rolling.jsonl" "$out/ours-forecast-validation.jsonl" "$out/ours-churn.jsonl" \
  "$out/ours-federated.jsonl" "$out/ref-forecast.jsonl" "$out/ref-forecast-rolling.jsonl" \
  "$out/ref-forecast-validation.jsonl" "$out/ref-iforest.jsonl" "$out/ref-churn.jsonl" \
  | tee "$out/numeric.md"
