"""JUnit parsing (pytest, JUnit 5/Surefire, nested suites) and the merged document."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from envci.report import junit
from envci.report.model import Case, Counts, RunResult, SuiteResult

DATA = Path(__file__).parent.parent / "data" / "test_stage" / "junit"


def test_pytest_file_gives_every_status_with_messages() -> None:
    cases = junit.parse_file(str(DATA / "pytest.xml"))
    by_name = {c.name: c for c in cases}
    assert [c.name for c in cases] == ["test_ok", "test_fail", "test_skip", "test_teardown", "test_ok2"]
    assert Counts.of(cases).as_tuple() == (5, 2, 1, 1, 1)
    fail = by_name["test_fail"]
    assert fail.status == "failed" and fail.classname == "checks"
    assert fail.message.startswith("AssertionError: checkout total is off by one")
    assert "checks.py:22: AssertionError" in fail.detail
    assert by_name["test_skip"].message == "needs S3" and by_name["test_skip"].detail == ""
    assert by_name["test_teardown"].status == "error"
    assert by_name["test_ok2"].seconds == pytest.approx(0.1)


def test_junit5_surefire_file_with_a_bare_testsuite_root() -> None:
    cases = junit.parse_file(str(DATA / "junit5.xml"))
    assert Counts.of(cases).as_tuple() == (3, 1, 1, 0, 1)
    fail = next(c for c in cases if c.failed)
    assert fail.title == "com.example.shop.CheckoutTest.emptyCartIsRejected()"
    assert fail.message == "expected: <400> but was: <500>"
    assert fail.kind == "org.opentest4j.AssertionFailedError"
    assert "CheckoutTest.java:31" in fail.detail
    assert next(c for c in cases if c.status == "skipped").message == "@Disabled: pricing service not seeded"


def test_nested_suites_give_classnames_from_the_nearest_suite() -> None:
    cases = junit.parse_file(str(DATA / "nested.xml"))
    assert [(c.classname, c.name, c.status) for c in cases] == [
        ("cart/add", "adds an item", "passed"),
        ("cart/add", "rejects a negative quantity", "failed"),
        ("cart.list", "lists items", "passed"),
    ]
    # a failure with only a body takes its first line as the message
    assert cases[1].message == "Error: expect(received).toBe(expected)"
    assert "Received: 200" in cases[1].detail


def test_error_wins_over_failure_and_skip_when_a_tool_writes_several() -> None:
    cases = junit.parse('<testsuite><testcase name="t"><skipped/><failure message="f"/><error message="e"/></testcase></testsuite>')
    assert cases[0].status == "error" and cases[0].message == "e"


def test_a_single_testcase_root_and_odd_times_are_accepted() -> None:
    assert junit.parse('<testcase name="x" time="1,234.5"/>')[0].seconds == 1234.5
    assert junit.parse('<testsuite><testcase name="y" time="soon"/></testsuite>')[0].seconds == 0.0


@pytest.mark.parametrize(
    ("text", "words"),
    [("<testsuite><testcase name='a'>", "not well-formed"), ("<html><body/></html>", "root element is <html>")],
)
def test_bad_documents_name_the_source_and_the_problem(text: str, words: str) -> None:
    with pytest.raises(junit.JUnitError) as e:
        junit.parse(text, "out/broken.xml")
    assert "out/broken.xml" in str(e.value) and words in str(e.value)


def test_an_entity_expansion_bomb_is_refused() -> None:
    bomb = '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">' + "".join(
        f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(8)
    ) + ']><testsuite><testcase name="&i;"/></testsuite>'
    with pytest.raises(junit.JUnitError):
        junit.parse(bomb, "bomb.xml")


def _run() -> RunResult:
    smoke = SuiteResult("smoke", "command", junit.parse_file(str(DATA / "pytest.xml")), seconds=1.5)
    java = SuiteResult("e2e", "job", junit.parse_file(str(DATA / "junit5.xml")), seconds=3.25)
    return RunResult("shop-pr-7", "envci-shop-pr-7", suites=[smoke, java], seconds=5.0, started_at="2024-05-01T10:00:00Z")


def test_merged_document_has_a_suite_per_envci_suite_and_correct_totals() -> None:
    text = junit.render(_run())
    root = ET.fromstring(text)
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == ("8", "2", "1", "2")
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["smoke", "e2e"]
    assert suites[1].get("time") == "3.250" and suites[1].get("failures") == "1"
    props = {p.get("name"): p.get("value") for p in suites[0].iter("property")}
    assert props == {"envci.kind": "command", "envci.outcome": "failed"}


def test_merged_document_parses_back_to_the_same_cases() -> None:
    run = _run()
    again = junit.parse(junit.render(run))
    original = [c for s in run.suites for c in s.cases]
    assert [(c.classname, c.name, c.status, c.message) for c in again] == [(c.classname, c.name, c.status, c.message) for c in original]
    assert again[1].detail == original[1].detail


def test_merge_concatenates_documents_in_order() -> None:
    cases = junit.merge([("a.xml", '<testsuite name="a"><testcase name="1"/></testsuite>'), ("b.xml", '<testsuites><testsuite name="b"><testcase name="2"/></testsuite></testsuites>')])
    assert [(c.classname, c.name) for c in cases] == [("a", "1"), ("b", "2")]


def test_synthetic_cases_without_classname_keep_their_title() -> None:
    assert Case(name="command").title == "command"
    assert Case(name="checks.test_x", classname="checks").title == "checks.test_x"
