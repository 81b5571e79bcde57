"""Great Expectations suites on real GX (ephemeral context built once per session)."""

from __future__ import annotations

import json
from typing import Any

import great_expectations as gx
import pytest
from helpers.datagate_helpers import chat, cls, inst, labelled

from tunegate.data.config import DataPolicy, LengthBounds
from tunegate.data.validate import (
    EXPECTATIONS_DIR,
    ValidationReport,
    load_suite,
    roles_alternate,
    run_expectations,
)
from tunegate.records import TASK_KINDS

pytestmark = pytest.mark.usefixtures("gx_ready")


def _outcome(report: ValidationReport, check: str) -> Any:
    return next(o for o in report.results if o.check == check)


def _failed(report: ValidationReport) -> set[str]:
    return {o.check for o in report.failed}


@pytest.mark.parametrize("task", TASK_KINDS)
def test_shipped_suites_load_as_gx_suites(task: str) -> None:
    doc = json.loads((EXPECTATIONS_DIR / f"{task}.json").read_text())
    suite, skipped = load_suite(task, DataPolicy(label_set=["a"], output_template=".*"))
    assert isinstance(suite, gx.ExpectationSuite) and suite.name == f"tunegate.{task}"
    assert skipped == []
    assert len(suite.expectations) == len(doc["expectations"])


def test_clean_classification_passes_and_reports_versions(policy: DataPolicy) -> None:
    recs = labelled({"a": 20, "b": 20})
    report = run_expectations(recs, "classification", policy, split="train")
    assert report.success, report.to_check().message
    assert report.gx_version == gx.__version__
    assert report.n_records == 40 and report.split == "train"
    assert {s["check"] for s in report.skipped} == {"label_in_set", "label_2_in_set"}
    assert _outcome(report, "text_length").element_count == 40
    check = report.to_check()
    assert check.passed and check.figures["gx_version"] == gx.__version__


def test_empty_and_missing_fields_fail_with_ids_and_no_values(policy: DataPolicy) -> None:
    good = labelled({"a": 5})
    blank = cls("   \t ", "a")
    no_label = cls("secret customer words here", "a").model_copy(update={"label": None})
    report = run_expectations([*good, blank, no_label], "classification", policy, split="train")
    assert _failed(report) == {"text_non_blank", "label_present"}
    assert _outcome(report, "text_non_blank").unexpected_ids == [blank.id]
    assert _outcome(report, "label_present").unexpected_ids == [no_label.id]
    dumped = json.dumps(report.to_dict()) + json.dumps(report.to_check().to_dict())
    assert "secret customer" not in dumped
    assert not report.to_check().passed


def test_labels_outside_the_policy_set_fail() -> None:
    policy = DataPolicy(label_set=["a", "b"])
    recs = [*labelled({"a": 5, "b": 5}), cls("some text here", "zz"), cls("other text", "a", label_2="qq")]
    report = run_expectations(recs, "classification", policy, split="train")
    assert _failed(report) == {"label_in_set", "label_2_in_set"}
    assert _outcome(report, "label_in_set").unexpected_ids == [recs[10].id]
    assert _outcome(report, "label_in_set").parameters["value_set"] == ["a", "b"]
    assert _outcome(report, "label_2_in_set").unexpected_ids == [recs[11].id]


def test_length_bounds_from_the_policy() -> None:
    policy = DataPolicy(lengths={"text": LengthBounds(min_chars=10, max_chars=200)})
    short, long = cls("tiny", "a"), cls("word " * 50, "a")
    report = run_expectations([*labelled({"a": 3}), short, long], "classification", policy, split="train")
    out = _outcome(report, "text_length")
    assert not out.success and out.unexpected_ids == sorted([short.id, long.id])
    assert out.parameters["min_value"] == 10 and out.parameters["max_value"] == 200


def test_exact_duplicates_beyond_the_rate_fail() -> None:
    recs = labelled({"a": 10})
    dup = cls(recs[0].text.upper() + "?", "a")  # same normalized text and label
    ok = run_expectations([*recs, dup], "classification", DataPolicy(max_duplicate_rate=0.1), split="x")
    assert ok.success
    bad = run_expectations([*recs, dup], "classification", DataPolicy(max_duplicate_rate=0.05), split="x")
    assert _failed(bad) == {"exact_duplicates"}
    flagged = _outcome(bad, "exact_duplicates").unexpected_ids
    assert flagged == [max(dup.id, recs[0].id)]  # the smallest id of the group is kept


def test_instruction_output_template_regex() -> None:
    policy = DataPolicy(output_template=r"ANSWER: [A-D]")
    good = [inst(f"question {i} about cards", "ANSWER: B") for i in range(4)]
    bad = inst("question about fees", "I think B")
    partial = inst("question about loans", "ANSWER: B because")  # a full match is required
    report = run_expectations([*good, bad, partial], "instruction", policy, split="train")
    assert _failed(report) == {"output_matches_template"}
    assert _outcome(report, "output_matches_template").unexpected_ids == sorted([bad.id, partial.id])


def test_instruction_output_json_schema() -> None:
    schema = {"type": "object", "required": ["answer"], "properties": {"answer": {"type": "integer"}}}
    policy = DataPolicy(output_json_schema=schema)
    good = inst("add 1 and 2", '{"answer": 3}')
    wrong_type = inst("add 2 and 2", '{"answer": "four"}')
    not_json = inst("add 3 and 3", "six")
    report = run_expectations([good, wrong_type, not_json], "instruction", policy, split="train")
    assert _outcome(report, "output_matches_template").unexpected_ids == sorted([wrong_type.id, not_json.id])


def test_instruction_empty_output_and_skipped_template(policy: DataPolicy) -> None:
    recs = [inst("say hi", "hi"), inst("say bye", "")]
    report = run_expectations(recs, "instruction", policy, split="train")
    assert "output_non_blank" in _failed(report) and "output_length" in _failed(report)
    assert [s["check"] for s in report.skipped] == ["output_matches_template"]


@pytest.mark.parametrize(
    ("roles", "ok"),
    [
        (["user", "assistant"], True),
        (["system", "user", "assistant", "user", "assistant"], True),
        (["assistant", "user"], False),
        (["user", "user", "assistant"], False),
        (["system", "user", "assistant", "user"], False),
        (["user", "system", "assistant"], False),
        (["system"], False),
        ([], False),
    ],
)
def test_roles_alternate(roles: list[str], ok: bool) -> None:
    assert roles_alternate(roles) is ok


def test_chat_role_and_turn_failures() -> None:
    policy = DataPolicy(max_chat_turns=4)
    good = chat(("system", "be brief"), ("user", "hi"), ("assistant", "hello"))
    broken = chat(("user", "hi"), ("user", "again"), ("assistant", "hello"))
    unknown = chat(("user", "hi"), ("robot", "beep"))
    too_long = chat(*[("user", f"q{i}") if i % 2 == 0 else ("assistant", f"a{i}") for i in range(6)])
    empty_turn = chat(("user", "hi"), ("assistant", ""))
    report = run_expectations([good, broken, unknown, too_long, empty_turn], "chat", policy, split="train")
    assert _outcome(report, "roles_alternate").unexpected_ids == sorted([broken.id, unknown.id])
    assert _outcome(report, "roles_known").unexpected_ids == [unknown.id]
    assert _outcome(report, "turn_count").unexpected_ids == [too_long.id]
    assert _outcome(report, "message_min_length").unexpected_ids == [empty_turn.id]
    assert [s["check"] for s in report.skipped] == ["output_matches_template"]


def test_chat_answer_template() -> None:
    policy = DataPolicy(output_template=r"\d+")
    good = chat(("user", "2+2?"), ("assistant", "4"))
    bad = chat(("user", "2+3?"), ("assistant", "five"))
    report = run_expectations([good, bad], "chat", policy, split="train")
    assert _failed(report) == {"output_matches_template"}
    assert _outcome(report, "output_matches_template").unexpected_ids == [bad.id]


def test_an_empty_split_fails_the_row_count(policy: DataPolicy) -> None:
    report = run_expectations([], "classification", policy, split="holdout")
    assert _failed(report) == {"not_empty"}
    assert not report.to_check().passed


def test_unknown_task_is_a_config_error(policy: DataPolicy) -> None:
    from tunegate.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown task kind"):
        run_expectations([], "summarization", policy, split="train")
