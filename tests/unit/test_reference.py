from __future__ import annotations

from pathlib import Path

from envci.config.reference import BEGIN, END, markdown


def test_readme_reference_is_current() -> None:
    text = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    section = text[text.index(BEGIN) : text.index(END) + len(END)] + "\n"
    assert section == markdown(), "README's envci.yaml reference is stale: run `python -m envci.config.reference README.md`"
