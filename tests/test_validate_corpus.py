"""The malformed-input corpus: every case fails `riskcap validate` with its own message."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from corpus import assert_complete, assert_matches_generator
from riskcap.cli import main

CORPUS = Path(__file__).resolve().parent / "malformed"
CASES = yaml.safe_load((CORPUS / "cases.yaml").read_text(encoding="utf-8"))
DEFAULT_AS_OF = "2025-03-31"



def _validate(folder: Path, *args: str):
    return CliRunner().invoke(main, ["validate", "--data", str(folder), *args])


def test_corpus_is_complete():
    assert_complete(CORPUS, CASES, at_least=25)


def test_corpus_matches_its_generator(tmp_path):
    """The committed folders are what make_cases.py writes (CSV byte for byte)."""
    assert_matches_generator(CORPUS, CASES, tmp_path, suffixes=(".csv",))


def test_valid_fixture_is_clean():
    result = _validate(CORPUS / "valid", "--as-of", DEFAULT_AS_OF)
    assert result.exit_code == 0, result.output
    assert "valid: no problems found" in result.output
    assert "problem(s)" not in result.output


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_case_message(case):
    spec = CASES[case]
    result = _validate(CORPUS / case, "--as-of", spec.get("as_of", DEFAULT_AS_OF))
    assert result.exit_code == 2, result.output
    for fragment in spec["expect"]:
        assert fragment in result.output, f"{case}: {fragment!r} not in\n{result.output}"
    for fragment in spec.get("absent", []):
        assert fragment not in result.output, f"{case}: {fragment!r} unexpectedly in\n{result.output}"
    assert "no data were used" in result.output


def test_messages_differ_between_cases():
    """Each case's problem lines are specific to it, not a generic failure."""
    seen = {}
    for case, spec in CASES.items():
        out = _validate(CORPUS / case, "--as-of", spec.get("as_of", DEFAULT_AS_OF)).output
        lines = tuple(sorted(l.strip().replace(str(CORPUS / case), "") for l in out.splitlines() if l.startswith("  - ")))
        assert lines, case
        assert lines not in seen, f"{case} gives the same problems as {seen.get(lines)}"
        seen[lines] = case
