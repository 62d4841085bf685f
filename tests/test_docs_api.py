"""docs/API.md: its examples run (from the repository root, on the real KVM fixture)."""

from __future__ import annotations

import doctest

from conftest import REPO


def test_api_doc_examples_run(monkeypatch):
    monkeypatch.chdir(REPO)
    result = doctest.testfile(
        str(REPO / "docs" / "API.md"),
        module_relative=False,
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
    )
    assert result.attempted >= 15
    assert result.failed == 0
