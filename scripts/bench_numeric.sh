#!/usr/bin/env bash
# Numeric benchmarks, ours and the Python references on the same data and machine, one after
# the other; prints one merged Markdown table per bench (also saved to target/bench/numeric.md).
#   scripts/bench_numeric.sh [forecast] [m1] [iforest] [churn] [federated]   (default: all)
# - forecast: statsforecast AutoETS, statsmodels ETSModel (scripts/bench_forecast.py) vs ours,
#             on each series' test window, on its last 5 windows (rolling origin), and on the
#             validation set of scripts/forecast_validation_data.py;
# - m1:       the 181 yearly M1 series (aeon wheel, scripts/m1_data.py), never used to choose
#             anything, against statsforecast AutoETS and AutoTheta: sMAPE, MASE, seconds;
# - iforest:  scikit-learn IsolationForest (scripts/bench_iforest.py) vs ours on one thread and
#             on every core, on ODDS Shuttle and two aeon sensor series
#             (scripts/extract_sensor_sets.py);
# - churn:    scikit-learn LogisticRegression / HistGradientBoosting (scripts/bench_churn.py) vs
#             ours, on each of the 5 train/test folds our churn bench writes (and their mean);
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
if [ ! -f "$data/internal-bleeding.csv" ] || [ ! -f "$data/ecg.csv" ]; then
  "$py" scripts/extract_sensor_sets.py --out "$data"
fi

sections="${*:-forecast m1 iforest churn federated}"
wants() { [[ " $sections " == *" $1 "* ]]; }

rm -f "$out"/ours.jsonl "$out"/ours-*.jsonl "$out"/ref-*.jsonl
touch "$out/ours.jsonl"

if wants forecast; then

# forecast: the Python side writes the series and index.json that ours reads.
"$py" scripts/bench_forecast.py --data-dir "$data/forecast" --json-out "$out/ref-forecast.jsonl"
cargo bench --locked --workspace --bench forecast -- \
  --index "$data/forecast/index.json" --jsonl "$out/ours-forecast.jsonl"

# forecast, rolling origin: each series' last 5 windows (the test window and 4 before it).
"$py" scripts/bench_forecast.py --series-dir "$data/forecast" --origins 5 --skip-auto \
  --json-out "$out/ref-forecast-rolling.jsonl"
cargo bench --locked --workspace --bench forecast -- \
  --index "$data/forecast/index.json" --origins 5 --jsonl "$out/ours-forecast-rolling.jsonl"

# forecast, validation set (never the test windows): where selection changes are judged.
"$py" scripts/forecast_validation_data.py --data-dir "$data/forecast-validation" \
  --airline "$data/airline-passengers.csv"
"$py" scripts/bench_forecast.py --series-dir "$data/forecast-validation" --runs 1 --skip-auto \
  --bench-name forecast_validation --json-out "$out/ref-forecast-validation.jsonl"
cargo bench --locked --workspace --bench forecast -- \
  --index "$data/forecast-validation/index.json" --bench-name forecast_validation \
  --jsonl "$out/ours-forecast-validation.jsonl"

fi

# m1: held-out yearly series; the means over all of them are printed after the table.
if wants m1; then
  [ -f "$data/m1/index.json" ] || "$py" scripts/m1_data.py --out "$data/m1"
  "$py" scripts/bench_forecast.py --series-dir "$data/m1" --runs 2 --skip-auto --theta \
    --bench-name forecast_m1 --json-out "$out/ref-forecast-m1.jsonl" > /dev/null
  cargo bench --locked --workspace --bench forecast -- --index "$data/m1/index.json" \
    --bench-name forecast_m1 --jsonl "$out/ours-forecast-m1.jsonl" > /dev/null
fi

# iforest: each data set, scikit-learn then ours, in this one run.
if wants iforest; then
  for set in shuttle internal-bleeding ecg; do
    "$py" scripts/bench_iforest.py --csv "$data/$set.csv" --name "$set" --seeds 20 \
      --json-out "$out/ref-iforest.jsonl"
    cargo bench --locked --workspace --bench iforest -- \
      --csv "$data/$set.csv" --name "$set" --seeds 20 --jsonl "$out/ours.jsonl"
  done
fi

# churn: ours first, it writes each fold's train<k>.csv / test<k>.csv.
if wants churn; then
  cargo bench --locked --workspace --bench churn -- \
    --out-dir "$out/churn" --jsonl "$out/ours-churn.jsonl"
  rm -f "$out/ref-churn.jsonl"
  for fold in 0 1 2 3 4; do
    "$py" scripts/bench_churn.py --train "$out/churn/train$fold.csv" \
      --test "$out/churn/test$fold.csv" --fold "$fold" --target churn \
      --json-out "$out/ref-churn-$fold.jsonl"
    cat "$out/ref-churn-$fold.jsonl" >> "$out/ref-churn.jsonl"
  done
fi

# federated: ours only.
if wants federated; then
  cargo bench --locked --workspace --bench federated -- --jsonl "$out/ours-federated.jsonl"
fi

results=()
for f in ours ours-forecast ours-forecast-rolling ours-forecast-validation ours-churn \
  ours-federated ref-forecast ref-forecast-rolling ref-forecast-validation ref-iforest ref-churn; do
  [ -f "$out/$f.jsonl" ] && results+=("$out/$f.jsonl")
done
"$py" scripts/bench_table.py "${results[@]}" | tee "$out/numeric.md"
if wants m1; then
  "$py" scripts/bench_summary.py "$out/ours-forecast-m1.jsonl" "$out/ref-forecast-m1.jsonl" \
    | tee -a "$out/numeric.md"
fi
