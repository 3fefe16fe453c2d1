#!/usr/bin/env python3
"""PyTorch / transformers side of the DistilBERT-classifier and T5-generation benchmark (CPU).

Usage (from the repository root):
    # 1. build the shared checkpoints once (idempotent, deterministic)
    python scripts/bench_models_pytorch.py make-checkpoints \
        --distilbert-base models/store/minilm-l6-distilbert \
        --sentences benches/data/sentences.txt --out target/bench/models
    # 2. DistilBERT sequence classification
    python scripts/bench_models_pytorch.py distilbert \
        --model-dir target/bench/models/distilbert-cls --sentences benches/data/sentences.txt \
        --batch-sizes 1,8,32 --threads 2 --warmup 2 --rounds 3 --max-length 256 \
        --json-out target/bench/pytorch-distilbert.json
    # 3. T5 greedy generation
    python scripts/bench_models_pytorch.py t5 \
        --model-dir target/bench/models/t5-small-shape --inputs target/bench/models/t5-inputs.json \
        --max-new-tokens 32 --threads 2 --warmup 2 --json-out target/bench/pytorch-t5.json

make-checkpoints writes under OUT:
  distilbert-cls/   DistilBertForSequenceClassification (num_labels=2, id2label
                    {0: "negative", 1: "positive"}): the encoder weights come from the base
                    folder's model.safetensors (names without the "distilbert." prefix, loaded
                    strictly), the head (pre_classifier, classifier) keeps transformers' default
                    init after torch.manual_seed(0). config.json + model.safetensors (names
                    "distilbert.embeddings...", "pre_classifier.*", "classifier.*") + the base's
                    tokenizer.json.
  t5-small-shape/   T5ForConditionalGeneration with the t5-small shape (d_model 512, 6+6 layers,
                    8 heads, d_ff 2048, relu, vocab 32128, tied embeddings), UNTRAINED: random
                    init after torch.manual_seed(0). Speed does not depend on the weight values;
                    the generated ids are only meaningful as a token-for-token cross-check.
  t5-inputs.json    {"inputs": [[ids...], ...]}: the first 48 non-empty sentences tokenized with
                    the base tokenizer.json (tokenizers library, add_special_tokens=False, the
                    file's own padding/truncation switched off), cut to 127 ids, then EOS (1).
Existing complete outputs are skipped ("exists"); folders are written to a temp dir and renamed.

distilbert: for each batch size the sentence list (file order) is cut into consecutive batches;
each timed call = tokenisation (padding="longest", truncation to --max-length) + forward under
torch.inference_mode() + softmax over the logits, --rounds passes. Reported as bench_pytorch.py:
sentences/s, tokens/s (real tokens incl. [CLS]/[SEP]), p50/p99/mean ms per batch, pad efficiency.
"logits_first8" are the logits of the first 8 sentences, each run alone (batch 1).

t5: each input is run alone (batch 1) through model.generate (greedy, num_beams=1, no sampling,
no min length, no repetition penalty, no forced tokens, stops on EOS id 1 or after
--max-new-tokens), --rounds passes; every call is timed. The encoder alone
(model.get_encoder()) is also timed once per input. "outputs" are the generated ids without the
leading decoder start token (0), from the first round. With these untrained weights greedy
decoding repeats token 0 for all --max-new-tokens steps (never EOS), so every call does the same
amount of decoder work; "first_step_top5" (top-5 logits of the first decoder step for the first
4 inputs) is the numeric cross-check.

JSON schema (distilbert):
{"model": str, "engine": "PyTorch (transformers)", "device": "cpu", "threads": int,
 "rounds": int, "warmup": int, "num_sentences": int, "total_tokens": int, "max_length": int,
 "import_s": float, "cold_load_s": float, "peak_rss_mb": float,
 "batch_sizes": [{"batch_size": int, "batches_timed": int, "sentences_per_s": float,
                  "tokens_per_s": float, "p50_ms": float, "p99_ms": float, "mean_ms": float,
                  "pad_efficiency": float}],
 "single_sentence": {"p50_ms": float, "p99_ms": float} | null,
 "logits_first8": [[float, float], ...],
 "generated_with": {package: version}}

JSON schema (t5):
{"model": str, "engine": "PyTorch (transformers)", "device": "cpu", "threads": int,
 "rounds": int, "warmup": int, "max_new_tokens": int, "import_s": float, "cold_load_s": float,
 "peak_rss_mb": float, "num_inputs": int, "input_tokens_total": int,
 "generated_tokens_total": int,       # per round
 "tokens_per_s": float,               # generated tokens / timed generate seconds
 "p50_ms": float, "p99_ms": float, "mean_ms": float,   # per generate call (one sequence)
 "ms_per_token": float,               # timed seconds / generated tokens * 1000
 "encoder_ms_p50": float, "encoder_ms_p99": float, "encoder_ms_mean": float,
 "stopped_on_eos": int,               # sequences whose last generated id is EOS
 "generated_lengths": [int, ...], "outputs": [[int, ...], ...],
 "first_step_top5": [{"ids": [int]*5, "logits": [float]*5}, ...],  # first 4 inputs, step 1
 "generated_with": {package: version}}
"""
import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import sys
import time

# The encoder benchmark's helpers (this script's folder is on sys.path when it runs).
from bench_pytorch import percentile, time_batches

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DISTILBERT_MODEL = "distilbert-cls (minilm-l6-distilbert + seeded head)"
T5_MODEL = "t5-small-shape (untrained, seed 0)"
ENGINE = "PyTorch (transformers)"
T5_EOS = 1
T5_DECODER_START = 0
T5_NUM_INPUTS = 48
T5_MAX_INPUT_IDS = 127


def read_sentences(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def versions():
    import numpy
    import safetensors
    import tokenizers
    import torch
    import transformers
    return {
        "python": platform.python_version(), "torch": torch.__version__,
        "transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
        "safetensors": safetensors.__version__, "numpy": numpy.__version__,
    }


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def write_json(path, obj):
    if not path:
        return
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    print(f"wrote {path}")


def setup_torch(threads):
    import torch
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(0)
    return torch


# ---------------------------------------------------------------------------- make-checkpoints

def _complete(folder, files):
    return all(os.path.isfile(os.path.join(folder, f)) for f in files)


def _save_pretrained(model, folder):
    import inspect
    kw = {}
    if "safe_serialization" in inspect.signature(model.save_pretrained).parameters:
        kw["safe_serialization"] = True  # transformers < 5; 5.x always writes safetensors
    model.save_pretrained(folder, **kw)


def _build_into(final_dir, files, build):
    """Run build(tmp_dir), check the files exist, then rename tmp_dir to final_dir."""
    if _complete(final_dir, files):
        print(f"{final_dir}: exists")
        return False
    if os.path.exists(final_dir):
        shutil.rmtree(final_dir)  # incomplete leftover
    tmp = final_dir + ".tmp"
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    os.makedirs(tmp)
    build(tmp)
    missing = [f for f in files if not os.path.isfile(os.path.join(tmp, f))]
    if missing:
        raise SystemExit(f"{final_dir}: build did not produce {missing}")
    os.rename(tmp, final_dir)
    print(f"{final_dir}: written")
    return True


def _print_tensor_names(path, label):
    from safetensors import safe_open
    with safe_open(path, "pt") as f:
        names = sorted(f.keys())
    special = [n for n in names if n.startswith(("pre_classifier", "classifier", "lm_head", "shared"))]
    print(f"{label}: {len(names)} tensors; first: {names[:4]}; head/shared/lm_head: {special}")
    return names


def make_distilbert(base, out_dir):
    import torch
    from safetensors.torch import load_file
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    def build(tmp):
        config = DistilBertConfig.from_pretrained(
            base, num_labels=2, id2label={0: "negative", 1: "positive"},
            label2id={"negative": 0, "positive": 1})
        torch.manual_seed(0)
        model = DistilBertForSequenceClassification(config)
        sd = load_file(os.path.join(base, "model.safetensors"))
        bad = [k for k in sd if k.startswith("distilbert.")]
        if bad:
            raise SystemExit(f"unexpected 'distilbert.' prefix in base tensors: {bad[:3]}")
        res = model.distilbert.load_state_dict(sd, strict=True)  # raises on missing/unexpected
        if res.missing_keys or res.unexpected_keys:
            raise SystemExit(f"load mismatch: {res}")
        model.eval()
        _save_pretrained(model, tmp)
        with open(os.path.join(tmp, "config.json")) as f:
            cfg = json.load(f)
        if cfg.get("id2label") != {"0": "negative", "1": "positive"}:
            raise SystemExit(f"config.json id2label is {cfg.get('id2label')!r}")
        shutil.copyfile(os.path.join(base, "tokenizer.json"), os.path.join(tmp, "tokenizer.json"))
        names = _print_tensor_names(os.path.join(tmp, "model.safetensors"), "distilbert-cls")
        for n in ("pre_classifier.weight", "pre_classifier.bias", "classifier.weight",
                  "classifier.bias", "distilbert.embeddings.word_embeddings.weight"):
            if n not in names:
                raise SystemExit(f"distilbert-cls model.safetensors lacks {n}")

    _build_into(out_dir, ["config.json", "model.safetensors", "tokenizer.json"], build)


def make_t5(out_dir):
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    def build(tmp):
        config = T5Config(
            vocab_size=32128, d_model=512, d_kv=64, d_ff=2048, num_layers=6,
            num_decoder_layers=6, num_heads=8, relative_attention_num_buckets=32,
            relative_attention_max_distance=128, feed_forward_proj="relu",
            tie_word_embeddings=True, pad_token_id=0, eos_token_id=T5_EOS,
            decoder_start_token_id=T5_DECODER_START, layer_norm_epsilon=1e-6)
        torch.manual_seed(0)
        model = T5ForConditionalGeneration(config)
        model.eval()
        _save_pretrained(model, tmp)
        names = _print_tensor_names(os.path.join(tmp, "model.safetensors"), "t5-small-shape")
        for n in ("shared.weight", "encoder.block.0.layer.0.SelfAttention.q.weight",
                  "decoder.block.0.layer.1.EncDecAttention.q.weight"):
            if n not in names:
                raise SystemExit(f"t5-small-shape model.safetensors lacks {n}")

    _build_into(out_dir, ["config.json", "model.safetensors"], build)


def make_t5_inputs(base, sentences_path, out_file):
    if os.path.isfile(out_file):
        print(f"{out_file}: exists")
        return
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(os.path.join(base, "tokenizer.json"))
    tok.no_padding()      # the file carries Fixed(128) padding
    tok.no_truncation()   # and max_length 128 truncation; we cut to 127 ourselves
    inputs = []
    for s in read_sentences(sentences_path)[:T5_NUM_INPUTS]:
        ids = tok.encode(s, add_special_tokens=False).ids[:T5_MAX_INPUT_IDS] + [T5_EOS]
        if max(ids) >= 32128:
            raise SystemExit(f"token id {max(ids)} outside the T5 vocab")
        inputs.append(ids)
    tmp = out_file + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"inputs": inputs}, f)
        f.write("\n")
    os.rename(tmp, out_file)
    lens = [len(x) for x in inputs]
    print(f"{out_file}: written ({len(inputs)} inputs, {sum(lens)} ids, "
          f"len min/max {min(lens)}/{max(lens)})")


def cmd_make_checkpoints(args):
    setup_torch(args.threads)
    os.makedirs(args.out, exist_ok=True)
    make_distilbert(args.distilbert_base, os.path.join(args.out, "distilbert-cls"))
    make_t5(os.path.join(args.out, "t5-small-shape"))
    make_t5_inputs(args.distilbert_base, args.sentences, os.path.join(args.out, "t5-inputs.json"))


# ---------------------------------------------------------------------------- distilbert

def cmd_distilbert(args):
    t0 = time.perf_counter()
    torch = setup_torch(args.threads)
    import transformers
    from transformers import DistilBertForSequenceClassification, PreTrainedTokenizerFast
    import_s = time.perf_counter() - t0

    sentences = read_sentences(args.sentences)
    batch_sizes = [int(x) for x in args.batch_sizes.split(",") if x.strip()]
    max_len = args.max_length

    t0 = time.perf_counter()
    model = DistilBertForSequenceClassification.from_pretrained(args.model_dir)
    model.eval()
    cold_load_s = time.perf_counter() - t0

    tok = PreTrainedTokenizerFast(
        tokenizer_file=os.path.join(args.model_dir, "tokenizer.json"),
        pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", unk_token="[UNK]",
        mask_token="[MASK]")
    # tokenizer.json carries Fixed(128) padding / 128 truncation; every call below sets its own.
    tok.backend_tokenizer.no_padding()
    tok.backend_tokenizer.no_truncation()
    probe = tok(sentences[0], truncation=True, max_length=max_len)["input_ids"]
    if probe[0] != tok.cls_token_id or probe[-1] != tok.sep_token_id or probe[0] != 101 or probe[-1] != 102:
        raise SystemExit(f"tokenizer does not add [CLS]/[SEP]: {probe[:3]}...{probe[-3:]}")

    tok_counts = [len(tok(s, truncation=True, max_length=max_len)["input_ids"]) for s in sentences]
    total_tokens = sum(tok_counts)

    def classify(batch):
        enc = tok(batch, padding="longest", truncation=True, max_length=max_len, return_tensors="pt")
        with torch.inference_mode():
            logits = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
            probs = torch.softmax(logits, dim=-1)
        return logits, probs, enc

    # sanity: batched padding must agree with the per-sentence counts
    _, _, enc = classify(sentences[:8])
    if enc["attention_mask"].sum(dim=1).tolist() != tok_counts[:8]:
        raise SystemExit("padded batch token counts disagree with per-sentence counts")

    logits_first8 = [classify([s])[0][0].tolist() for s in sentences[:8]]

    print(f"model={args.model_dir} threads={torch.get_num_threads()} sentences={len(sentences)} "
          f"tokens={total_tokens} cold_load={cold_load_s:.3f}s import={import_s:.3f}s")
    results, single = time_batches(sentences, tok_counts, batch_sizes, args.warmup, args.rounds, classify)

    rss = peak_rss_mb()
    if single:
        print(f"single sentence: p50={single['p50_ms']:.2f} ms p99={single['p99_ms']:.2f} ms")
    print(f"logits[0]={logits_first8[0]}")
    print(f"peak RSS: {rss:.1f} MB")
    write_json(args.json_out, {
        "model": DISTILBERT_MODEL, "engine": ENGINE, "device": "cpu",
        "threads": torch.get_num_threads(), "rounds": args.rounds, "warmup": args.warmup,
        "num_sentences": len(sentences), "total_tokens": total_tokens, "max_length": max_len,
        "import_s": import_s, "cold_load_s": cold_load_s, "peak_rss_mb": rss,
        "batch_sizes": results, "single_sentence": single, "logits_first8": logits_first8,
        "generated_with": versions(),
    })


# ---------------------------------------------------------------------------- t5

def cmd_t5(args):
    t0 = time.perf_counter()
    torch = setup_torch(args.threads)
    import transformers  # noqa: F401
    from transformers import GenerationConfig, T5ForConditionalGeneration
    import_s = time.perf_counter() - t0

    with open(args.inputs) as f:
        inputs = json.load(f)["inputs"]

    t0 = time.perf_counter()
    model = T5ForConditionalGeneration.from_pretrained(args.model_dir)
    model.eval()
    cold_load_s = time.perf_counter() - t0

    gen_cfg = GenerationConfig(
        max_new_tokens=args.max_new_tokens, do_sample=False, num_beams=1,
        min_length=0, repetition_penalty=1.0, no_repeat_ngram_size=0,
        forced_bos_token_id=None, forced_eos_token_id=None, bad_words_ids=None,
        decoder_start_token_id=T5_DECODER_START, eos_token_id=T5_EOS, pad_token_id=0,
        use_cache=True)
    tensors = [torch.tensor([ids], dtype=torch.long) for ids in inputs]

    def generate(x):
        with torch.inference_mode():
            out = model.generate(x, attention_mask=torch.ones_like(x), generation_config=gen_cfg)
        ids = out[0].tolist()
        if ids[0] != T5_DECODER_START:
            raise SystemExit(f"generate output does not start with the decoder start token: {ids[:3]}")
        return ids[1:]

    encoder = model.get_encoder()

    def encode(x):
        with torch.inference_mode():
            return encoder(input_ids=x, attention_mask=torch.ones_like(x)).last_hidden_state

    # Untrained weights make greedy decoding copy the decoder start token (0) forever, so
    # "outputs" is a weak check; the top-5 logits of the first decoder step (decoder input
    # [0]) for the first 4 inputs exercise encoder, cross-attention and the tied lm_head.
    first_step_top5 = []
    with torch.inference_mode():
        for x in tensors[:4]:
            logits = model(input_ids=x, attention_mask=torch.ones_like(x),
                           decoder_input_ids=torch.tensor([[T5_DECODER_START]])).logits[0, -1]
            v, i = logits.topk(5)
            first_step_top5.append({"ids": i.tolist(), "logits": v.tolist()})

    for i in range(args.warmup):
        generate(tensors[i % len(tensors)])
        encode(tensors[i % len(tensors)])

    enc_lat = []
    for x in tensors:
        t = time.perf_counter()
        encode(x)
        enc_lat.append(time.perf_counter() - t)

    lat, outputs, n_gen = [], None, 0
    for r in range(args.rounds):
        round_out = []
        for x in tensors:
            t = time.perf_counter()
            ids = generate(x)
            lat.append(time.perf_counter() - t)
            round_out.append(ids)
            n_gen += len(ids)
        if outputs is None:
            outputs = round_out
        elif round_out != outputs:
            print("warning: generated ids differ between rounds")
    total = sum(lat)
    lengths = [len(o) for o in outputs]
    gen_per_round = sum(lengths)
    stopped_on_eos = sum(1 for o in outputs if o and o[-1] == T5_EOS)
    rss = peak_rss_mb()
    res = {
        "model": T5_MODEL, "engine": ENGINE, "device": "cpu",
        "threads": torch.get_num_threads(), "rounds": args.rounds, "warmup": args.warmup,
        "max_new_tokens": args.max_new_tokens, "import_s": import_s, "cold_load_s": cold_load_s,
        "peak_rss_mb": rss, "num_inputs": len(inputs),
        "input_tokens_total": sum(len(x) for x in inputs),
        "generated_tokens_total": gen_per_round,
        "tokens_per_s": n_gen / total,
        "p50_ms": percentile(lat, 50) * 1e3, "p99_ms": percentile(lat, 99) * 1e3,
        "mean_ms": statistics.mean(lat) * 1e3,
        "ms_per_token": total / n_gen * 1e3 if n_gen else float("nan"),
        "encoder_ms_p50": percentile(enc_lat, 50) * 1e3,
        "encoder_ms_p99": percentile(enc_lat, 99) * 1e3,
        "encoder_ms_mean": statistics.mean(enc_lat) * 1e3,
        "stopped_on_eos": stopped_on_eos,
        "generated_lengths": lengths, "outputs": outputs, "first_step_top5": first_step_top5,
        "generated_with": versions(),
    }
    print(f"model={args.model_dir} threads={res['threads']} inputs={len(inputs)} "
          f"input_tokens={res['input_tokens_total']} cold_load={cold_load_s:.3f}s import={import_s:.3f}s")
    print(f"generate: {res['tokens_per_s']:.1f} tok/s, {res['ms_per_token']:.2f} ms/token, "
          f"p50={res['p50_ms']:.2f} ms p99={res['p99_ms']:.2f} ms per sequence "
          f"({len(lat)} sequences timed)")
    print(f"generated tokens: {gen_per_round} per round (min/max per sequence "
          f"{min(lengths)}/{max(lengths)}, {stopped_on_eos} ended with EOS)")
    print(f"encoder only: p50={res['encoder_ms_p50']:.2f} ms p99={res['encoder_ms_p99']:.2f} ms")
    print(f"outputs[0]={outputs[0]}")
    print(f"first-step top5 (input 0): {first_step_top5[0]}")
    print(f"peak RSS: {rss:.1f} MB")
    write_json(args.json_out, res)


# ---------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)

    mk = sub.add_parser("make-checkpoints", help="write the shared DistilBERT/T5 checkpoints")
    mk.add_argument("--distilbert-base", default="models/store/minilm-l6-distilbert")
    mk.add_argument("--sentences", default="benches/data/sentences.txt")
    mk.add_argument("--out", default="target/bench/models")
    mk.add_argument("--threads", type=int, default=2)
    mk.set_defaults(func=cmd_make_checkpoints)

    db = sub.add_parser("distilbert", help="DistilBERT sequence-classification throughput")
    db.add_argument("--model-dir", default="target/bench/models/distilbert-cls")
    db.add_argument("--sentences", default="benches/data/sentences.txt")
    db.add_argument("--batch-sizes", default="1,8,32")
    db.add_argument("--threads", type=int, default=2)
    db.add_argument("--warmup", type=int, default=2, help="warm-up batches per batch size")
    db.add_argument("--rounds", type=int, default=3, help="passes over all sentences per batch size")
    db.add_argument("--max-length", type=int, default=256)
    db.add_argument("--json-out", default=None)
    db.set_defaults(func=cmd_distilbert)

    t5 = sub.add_parser("t5", help="T5 greedy generation speed, batch 1")
    t5.add_argument("--model-dir", default="target/bench/models/t5-small-shape")
    t5.add_argument("--inputs", default="target/bench/models/t5-inputs.json")
    t5.add_argument("--max-new-tokens", type=int, default=32)
    t5.add_argument("--threads", type=int, default=2)
    t5.add_argument("--warmup", type=int, default=2, help="warm-up generations")
    t5.add_argument("--rounds", type=int, default=1, help="passes over all inputs")
    t5.add_argument("--json-out", default=None)
    t5.set_defaults(func=cmd_t5)

    args = ap.parse_args()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
