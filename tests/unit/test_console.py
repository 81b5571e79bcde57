"""Library noise goes to WORKDIR/logs, tunegate's own lines stay on the console; plain progress."""

from __future__ import annotations

import io
import logging
import sys
import warnings
from pathlib import Path

import pytest

from tunegate import console
from tunegate.workdir import logs_dir


def test_library_noise_goes_to_the_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from transformers.utils import logging as hf_logging

    with console.library_output(tmp_path, command="train") as path:
        hf_logging.get_logger("transformers.modeling_utils").warning("BertModel LOAD REPORT from: x")
        logging.getLogger("bitsandbytes.backends.cpu.ops").warning("Failed to load CPU gemm_4bit_forward")
        warnings.warn("`gradient_checkpointing_enable` is deprecated", FutureWarning, stacklevel=1)
        print("  3%|▎         | 1/30 [00:01<00:29]", file=sys.stderr)  # a raw tqdm bar
        console.user_stream().write("train: 10/30 steps\n")
    err = capsys.readouterr().err
    assert path == logs_dir(tmp_path) / "train.log"
    log = path.read_text()
    for noise in ("LOAD REPORT", "gemm_4bit_forward", "gradient_checkpointing_enable", "1/30"):
        assert noise in log and noise not in err
    assert "train: 10/30 steps" in err and f"library messages: {path}" in err
    # restored afterwards
    logging.getLogger("bitsandbytes").warning("after the context")
    assert "after the context" not in path.read_text()


def test_buffered_until_the_workdir_is_known(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with console.library_output(command="prepare"):
        logging.getLogger("prefect").warning("See https://docs.prefect.io/v3/concepts/server")
        assert console.bind_workdir(tmp_path / "wd") == tmp_path / "wd/logs/prepare.log"
    assert "docs.prefect.io" in (tmp_path / "wd/logs/prepare.log").read_text()
    assert "docs.prefect.io" not in capsys.readouterr().err


def test_verbose_keeps_everything_on_the_console(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with console.library_output(tmp_path, verbose=True) as path:
        print("raw library line", file=sys.stderr)
    assert path is None and "raw library line" in capsys.readouterr().err
    assert not logs_dir(tmp_path).exists()


def test_plain_progress_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    with console.Progress("evaluate", total=4, unit="batches", stream=out, interval=0.0) as p:
        for _ in range(4):
            p.advance()
    lines = out.getvalue().splitlines()
    assert lines[0] == "evaluate: started, 4 batches"
    assert lines[1].startswith("evaluate: 1/4 batches (25%)") and "left" in lines[1]
    assert lines[-1].startswith("evaluate: 4/4 batches (100%)") and lines[-1].endswith(": done")
    quiet = io.StringIO()
    with console.Progress("train", total=100, stream=quiet, interval=3600.0) as p:
        for _ in range(100):
            p.advance()
    assert len(quiet.getvalue().splitlines()) == 2  # started + done: no line per step


def test_training_progress_is_plain_lines_when_output_is_not_a_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 13: a training run whose output goes to a log file is never silent."""
    import io

    from tunegate.training.train import _Progress

    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    monkeypatch.setattr("sys.stderr", err)
    with _Progress("run-1", 10, 0, True) as bar:
        bar.update(completed=4, loss="1.2500")
        bar.update(val="1.1000")
        bar.update(completed=10, loss="0.7500")
    lines = err.getvalue().splitlines()
    assert lines[0] == "train run-1: started, 10 steps"
    assert lines[-1].startswith("train run-1: 10/10 steps (100%), loss 0.7500  val 1.1000")
    assert lines[-1].endswith(": done") and "\x1b[" not in err.getvalue()
    with _Progress("run-2", 10, 0, False) as bar:  # progress off: nothing at all
        bar.update(completed=10, loss="0.1")
    assert "run-2" not in err.getvalue()


def test_library_loops_report_progress_only_inside_a_command(tmp_path: Path) -> None:
    """Prediction and generation loops call console.progress: silent for library callers and
    tests, plain lines (off a terminal) while a `tunegate` command runs."""
    import io

    quiet = console.progress("classify", 3, unit="texts")
    with quiet as bar:
        bar.advance(3)
    assert type(quiet).__name__ == "_NoProgress"
    err = io.StringIO()
    real = sys.stderr
    sys.stderr = err
    try:
        with (
            console.library_output(tmp_path, command="evaluate", verbose=False),
            console.progress("classify", 3, unit="texts") as bar,
        ):
            bar.advance(3)
    finally:
        sys.stderr = real
    text = err.getvalue()
    assert "classify: started, 3 texts" in text and "classify: 3/3 texts (100%)" in text


def test_lazy_progress_is_silent_for_a_short_pass_and_reports_a_long_one() -> None:
    """Issue 13: the PII pass of `prepare` reports progress (lazily, so that a short pass or a fast
    failure keeps the one-line error contract)."""
    short = io.StringIO()
    with console.Progress("anonymize", total=10, unit="texts", stream=short, interval=3600.0, lazy=True) as p:
        p.advance(10)
    assert short.getvalue() == ""
    failed = io.StringIO()
    with (
        pytest.raises(RuntimeError),
        console.Progress("anonymize", total=10, stream=failed, interval=3600.0, lazy=True) as p,
    ):
        p.advance(3)
        raise RuntimeError("bad record")
    assert failed.getvalue() == ""
    long = io.StringIO()
    with console.Progress("anonymize", total=4, unit="texts", stream=long, interval=0.0, lazy=True) as p:
        for _ in range(4):
            p.advance()
    lines = long.getvalue().splitlines()
    assert lines[0] == "anonymize: started, 4 texts"
    assert lines[1].startswith("anonymize: 1/4 texts (25%)")
    assert lines[-1].startswith("anonymize: 4/4 texts (100%)") and lines[-1].endswith(": done")


def test_the_pii_pass_reports_progress_inside_a_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real PII pass (Presidio + spaCy) inside a `tunegate` command prints plain progress lines
    once it has run for the interval; the result is the same as without progress."""
    from tunegate.pii.config import PIIPolicy
    from tunegate.pii.detect import build_analyzer, detect_texts

    monkeypatch.setattr(console, "PLAIN_INTERVAL", 0.0)
    policy = PIIPolicy(n_process=1)
    analyzer = build_analyzer(policy)
    texts = [f"Call Anna Kowalska at +48 601 234 {i:03d} about ticket {i}." for i in range(40)]
    quiet = detect_texts(analyzer, policy, texts)
    err = io.StringIO()
    real = sys.stderr
    sys.stderr = err
    try:
        with console.library_output(tmp_path, command="prepare", verbose=False):
            spans = detect_texts(analyzer, policy, texts)
    finally:
        sys.stderr = real
    assert spans == quiet and any(s.entity_type == "PHONE_NUMBER" for s in spans[0])
    text = err.getvalue()
    assert "anonymize: started, 40 texts" in text and "anonymize: 40/40 texts (100%)" in text
    assert "Kowalska" not in text  # progress names counts, never values
