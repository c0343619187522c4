"""Real extracts in: GP registrations and coded journals (SNOMED CT, mapped by OpenCodelists
codelists), SUS-shaped hospital spells and attendances, ECDS A&E, and community, mental health
and social care extracts, into the data contract, with a report of everything read.

Public API::

    from riskcap.ingest import ImportSettings, import_extracts, write_extracts
    report = import_extracts(ImportSettings(gp=..., hospital=..., codelists=..., out=...))

``docs/import.md`` describes the extracts, the codelists and the report.
"""
from riskcap.ingest.run import ImportSettings, import_extracts

__all__ = ["ImportSettings", "import_extracts"]
