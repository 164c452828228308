"""Read JUnit XML in the shapes test tools write, and write one merged file for CI systems.

Tools disagree on the details: pytest writes `<testsuites><testsuite>`, Maven Surefire and the
JUnit 5 console launcher write a bare `<testsuite>`, Gradle and some JavaScript reporters nest
suites inside suites, and a failure may be `<failure>` or `<error>`, with its text in an attribute, the
body, or both. `parse` walks every `<testcase>` wherever it sits and takes the nearest enclosing
suite's name when a case has no classname.

ElementTree is safe enough here: the files come from the build's own tests, Python's expat
(>= 2.4.1) refuses entity-expansion bombs, and ElementTree never fetches external entities.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime

from envci.report.model import Case, RunResult, SuiteResult, Status, clean

MESSAGE_LIMIT = 500


class JUnitError(ValueError):
    """A file is not JUnit XML; the message says which file and why."""


def _seconds(raw: str | None) -> float:
    try:
        return max(0.0, float((raw or "0").replace(",", "")))
    except ValueError:
        return 0.0


def _walk(elem: ET.Element, suite: str) -> Iterator[tuple[ET.Element, str]]:
    """Every testcase with the name of its nearest enclosing testsuite."""
    for child in elem:
        if child.tag == "testcase":
            yield child, suite
        elif child.tag in ("testsuite", "testsuites"):
            yield from _walk(child, child.get("name") or suite)


def _case(elem: ET.Element, suite: str) -> Case:
    case = Case(
        name=elem.get("name") or "(unnamed)",
        classname=elem.get("classname") or elem.get("class") or suite,
        seconds=_seconds(elem.get("time")),
        file=elem.get("file") or "",
    )
    # Order matters when a tool writes several: an error (a crash, a teardown error) is the
    # stronger statement, then a failure; a skip only counts when nothing went wrong.
    marks: tuple[tuple[str, Status], ...] = (("error", "error"), ("failure", "failed"), ("skipped", "skipped"))
    for tag, status in marks:
        found = elem.find(tag)
        if found is None:
            continue
        case.status = status
        body = (found.text or "").strip()
        message = (found.get("message") or "").strip()
        if not message and body:
            message = body.splitlines()[0]
        case.message = clean(message, MESSAGE_LIMIT)
        case.kind = clean(found.get("type") or "", 200)
        if status != "skipped":
            case.detail = clean(body)
        break
    return case


def parse(text: str | bytes, source: str = "") -> list[Case]:
    """The test cases in one JUnit XML document. Raises JUnitError naming `source` on bad input."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise JUnitError(f"{source or 'JUnit text'} is not well-formed XML: {e}") from None
    if root.tag not in ("testsuites", "testsuite", "testcase"):
        raise JUnitError(f"{source or 'JUnit text'}: the root element is <{root.tag}>, not <testsuites> or <testsuite>")
    if root.tag == "testcase":
        return [_case(root, "")]
    return [_case(elem, suite) for elem, suite in _walk(root, root.get("name") or "")]


def parse_file(path: str) -> list[Case]:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise JUnitError(f"cannot read JUnit file {path}: {e.strerror}") from None
    return parse(data, path)


# --- writing ------------------------------------------------------------------------------------


def _counts_attrs(elem: ET.Element, suite_cases: list[Case], seconds: float) -> None:
    elem.set("tests", str(len(suite_cases)))
    elem.set("failures", str(sum(c.status == "failed" for c in suite_cases)))
    elem.set("errors", str(sum(c.status == "error" for c in suite_cases)))
    elem.set("skipped", str(sum(c.status == "skipped" for c in suite_cases)))
    elem.set("time", f"{seconds:.3f}")


def _case_elem(parent: ET.Element, case: Case) -> None:
    e = ET.SubElement(parent, "testcase", {"name": case.name, "classname": case.classname, "time": f"{case.seconds:.3f}"})
    if case.file:
        e.set("file", case.file)
    if case.status == "skipped":
        s = ET.SubElement(e, "skipped")
        if case.message:
            s.set("message", case.message)
    elif case.failed:
        f = ET.SubElement(e, "error" if case.status == "error" else "failure", {"message": case.message})
        if case.kind:
            f.set("type", case.kind)
        f.text = case.detail or None


def suite_element(suite: SuiteResult, timestamp: str = "") -> ET.Element:
    elem = ET.Element("testsuite", {"name": suite.name})
    _counts_attrs(elem, suite.cases, suite.seconds)
    if timestamp:
        elem.set("timestamp", timestamp)
    props = ET.SubElement(elem, "properties")
    ET.SubElement(props, "property", {"name": "envci.kind", "value": suite.kind})
    ET.SubElement(props, "property", {"name": "envci.outcome", "value": suite.outcome})
    for case in suite.cases:
        _case_elem(elem, case)
    return elem


def render(run: RunResult) -> str:
    """One `<testsuites>` document holding a `<testsuite>` per envci suite (classnames kept)."""
    root = ET.Element("testsuites", {"name": f"envci {run.name}"})
    cases = [c for s in run.suites for c in s.cases]
    _counts_attrs(root, cases, run.seconds)
    stamp = run.started_at or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    for suite in run.suites:
        root.append(suite_element(suite, stamp))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def merge(texts: list[tuple[str, str]]) -> list[Case]:
    """The cases of several JUnit documents (`(source, text)` pairs), in order."""
    out: list[Case] = []
    for source, text in texts:
        out.extend(parse(text, source))
    return out
