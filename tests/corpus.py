"""What the two malformed corpora (`malformed/` for validate, `malformed_extracts/` for import)
share: loading the corpus's own generator and checking the committed folders against it."""
from __future__ import annotations

import importlib.util
from pathlib import Path


def generator(corpus: Path):
    """The corpus's `make_cases.py`, loaded as a module (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location(f"make_cases_{corpus.name}", corpus / "make_cases.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_matches_generator(corpus: Path, cases, built: Path, suffixes: tuple[str, ...] | None = None):
    """Every case folder holds exactly the files the generator writes into `built`, with the same
    bytes (only files with one of `suffixes` compared by content, when given)."""
    generator(corpus).build(built)
    for case in cases:
        committed = sorted(p.relative_to(corpus / case) for p in (corpus / case).rglob("*") if p.is_file())
        written = sorted(p.relative_to(built / case) for p in (built / case).rglob("*") if p.is_file())
        assert committed == written, case
        for rel in committed:
            if suffixes is None or rel.suffix in suffixes:
                assert (corpus / case / rel).read_bytes() == (built / case / rel).read_bytes(), f"{case}/{rel}"


def assert_complete(corpus: Path, cases, at_least: int):
    """cases.yaml, the committed folders and the generator name the same cases."""
    folders = {p.name for p in corpus.iterdir() if p.is_dir() and p.name not in ("valid", "__pycache__")}
    assert len(cases) >= at_least
    assert set(cases) == folders == set(generator(corpus).CASES)
