"""The hostile-input corpus (issue 23): every case in tests/hostile gives its own clear message and
exit code, never a traceback, and leaves nothing written or deleted where it should not."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import yaml

CORPUS = Path(__file__).resolve().parent / "hostile"
CASES = yaml.safe_load((CORPUS / "cases.yaml").read_text(encoding="utf-8"))


def _make_cases():
    spec = importlib.util.spec_from_file_location("hostile_make_cases", CORPUS / "make_cases.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


MAKE = _make_cases()


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return MAKE.build_base(tmp_path_factory.mktemp("hostile-base"))


def test_corpus_is_complete():
    assert set(CASES) == set(MAKE.CASES)
    assert set(MAKE.CHECKS) <= set(CASES)
    items = {spec["item"] for spec in CASES.values()}
    assert items == {1, 2, 3, 6, 7, 8}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_case(case, base, tmp_path, monkeypatch):
    spec = CASES[case]
    for name, value in spec.get("env", {}).items():
        monkeypatch.setenv(name, str(value))
    monkeypatch.setenv("RISKCAP_PSEUDONYM_KEY", "k" * 32)
    args = MAKE.CASES[case](base, tmp_path)
    result = MAKE.invoke(args)
    output = result.output
    assert result.exit_code == spec.get("exit", 2), f"{case}: exit {result.exit_code}\n{output}\n{result.exception!r}"
    assert "Traceback" not in output
    if spec.get("exit", 2) == 2:
        assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), \
            f"{case}: {result.exception!r}"
    for fragment in spec.get("expect", []):
        assert fragment in output, f"{case}: {fragment!r} not in\n{output}"
    for fragment in spec.get("absent", []):
        assert fragment not in output, f"{case}: {fragment!r} unexpectedly in\n{output}"
    if case in MAKE.CHECKS:
        MAKE.CHECKS[case](base, tmp_path)
