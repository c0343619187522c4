"""The import report: what was read, mapped, not mapped and rejected, and whether it looks right.

Written as ``import_report.json`` (for audit and tools) and ``import_report.txt`` (the same
tables as ``riskcap import`` prints). ``docs/import.md`` explains every part to the analyst.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from riskcap.capitation.money import gbp
from riskcap.config import load_yaml, shipped_config
from riskcap.ingest.extracts import EXTRACTS
from riskcap.schema import CONDITION_CODES, CONDITIONS

TOP_CODES = 20

#: QOF's resolution clusters: applied only when the mapping lists them as ``exclude``.
QOF_RESOLUTIONS = {"hypertension": "hypres_cod", "diabetes": "dmres_cod", "af": "afibres_cod",
                   "asthma": "astres_cod", "copd": "copdres_cod", "heart_failure": "hfres_cod",
                   "epilepsy": "epilres_cod", "ckd": "ckdres_cod", "depression": "depres_cod", "smi": "mhrem_cod"}
#: What riskcap's register rule leaves out of QOF's, per register (docs/import.md).
SIMPLIFIED = {
    "asthma": "QOF also needs asthma treatment in the last 12 months: not applied",
    "epilepsy": "QOF also needs anti-epileptic treatment in the last 6 months: not applied",
    "depression": "QOF counts diagnoses from 2006-04-01: earlier ones kept",
    "obesity": "stand-in list; QOF needs BMI 30+ in the last 12 months (BMI30_COD, BMIVAL_COD)",
    "cancer": "stand-in list (COVID-19 at-risk cancer clusters); QOF's CAN_COD is not published",
    "osteoporosis": "QOF also needs a fragility fracture on or after age 50: not applied",
    "frailty": "not a QOF register: moderate or severe frailty codes; mild frailty after them takes people off",
}
#: Codelists known to be stand-ins for QOF clusters that are not on OpenCodelists.
STAND_INS = ("c19can_cod", "c19haemcan_cod", "bmiobese_cod")


def qof_prevalence() -> dict[str, tuple[float, int]]:
    """QOF England prevalence (percent, minimum age of the denominator) per register."""
    data = load_yaml(shipped_config("qof_prevalence.yaml"))["registers"]
    return {name: (float(v["percent"]), int(v["min_age"])) for name, v in data.items()}


def _ymd(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(year, month, day of month) of int32 day numbers."""
    d = np.asarray(days).astype("datetime64[D]")
    months = d.astype("datetime64[M]")
    return (d.astype("datetime64[Y]").astype(np.int64) + 1970, months.astype(np.int64) % 12 + 1,
            (d - months.astype("datetime64[D]")).astype(np.int64) + 1)


def ages(birth: np.ndarray, day: int) -> np.ndarray:
    """Whole years of age on ``day`` of people born on ``birth`` (int32 days)."""
    by, bm, bd = _ymd(birth)
    dy, dm, dd = (int(v[0]) for v in _ymd(np.array([day])))
    return dy - by - ((bm > dm) | ((bm == dm) & (bd > dd))).astype(np.int64)


def prevalence_counts(persons: pa.Table, registrations: pa.Table, conditions: pa.Table, day: int) -> Counter:
    """Numerators and denominators of the registers' prevalence among people registered and
    alive on ``day``: keys ("people", min_age) and ("register", condition)."""
    out: Counter = Counter()
    if persons.num_rows == 0:
        return out
    rf = registrations.column("registered_from").cast(pa.int32()).to_numpy(zero_copy_only=False)
    rt = registrations.column("registered_to").cast(pa.int32()).fill_null(np.iinfo(np.int32).max) \
        .to_numpy(zero_copy_only=False)
    on_day = np.unique(registrations.column("person_id").to_numpy()[(rf <= day) & (rt > day)])
    ids = persons.column("person_id").to_numpy()
    died = persons.column("died_on").cast(pa.int32()).fill_null(np.iinfo(np.int32).max).to_numpy(zero_copy_only=False)
    eligible = np.isin(ids, on_day) & (died > day)
    ages_ = ages(persons.column("birth_date").cast(pa.int32()).to_numpy(zero_copy_only=False), day)
    table = qof_prevalence()
    for min_age in sorted({m for _, m in table.values()}):
        out[("people", min_age)] += int((eligible & (ages_ >= min_age)).sum())
    if conditions.num_rows:
        cid = conditions.column("person_id").to_numpy()
        pos = np.searchsorted(ids, cid)
        ok = eligible[pos]
        age = ages_[pos]
        names = conditions.column("condition").cast(pa.string()).to_numpy(zero_copy_only=False)
        for name in CONDITION_CODES:
            min_age = table.get(name, (0.0, 0))[1]
            out[("register", name)] += int((ok & (age >= min_age) & (names == name)).sum())
    return out


@dataclass
class ImportReport:
    """Everything ``riskcap import`` reports (see :meth:`as_dict`)."""

    extract_date: str
    on_invalid: str
    inputs: dict
    files: list[dict]
    unmapped_codes: list[dict]
    registers: list[dict]
    codelists: dict
    unit_costs: dict
    costs_priced: dict
    costs_rounded: int
    acs: dict
    registrations: dict
    hospital: dict
    outputs_rows: dict
    partitions: int
    extract_date_from: str = ""
    ignored_files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    problems: list = field(default_factory=list)
    rejects: dict = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return "quarantined" if any(f["rejected"] for f in self.files) else "clean"

    @classmethod
    def build(cls, settings, last_day, sources, tallies, codelists, unit_costs, pricing, registrations,
              registers, hospital, prevalence, outputs_rows, list_size_derived, partitions) -> "ImportReport":
        files = []
        codes = []
        for key in EXTRACTS:
            if key not in tallies:
                continue
            t = tallies[key]
            assert t.reconciles(), f"{key}: rows do not add up: {t}"
            files.append({"extract": key, "file": str(sources[key].path), "rows_read": t.read, "mapped": t.mapped,
                          "unmapped": dict(sorted(t.unmapped.items(), key=lambda kv: (-kv[1], kv[0]))),
                          "rejected": t.rejected})
            codes += [{"extract": key, "column": column, "code": code, "reason": reason, "rows": n}
                      for (column, code, reason), n in t.codes.items()]
        codes.sort(key=lambda c: (-c["rows"], c["extract"], c["column"], c["code"]))
        qof = qof_prevalence()
        register_rows = []
        for name in CONDITION_CODES:
            includes = [m.codelist_id for m in codelists.mapping if m.register == name and m.role == "include"]
            excludes = [m.codelist_id for m in codelists.mapping if m.register == name and m.role == "exclude"]
            percent, min_age = qof.get(name, (None, 0))
            people = prevalence.get(("people", min_age), 0)
            on = prevalence.get(("register", name), 0)
            rule = "first include code"
            if excludes:
                rule = "latest include code after the latest exclude code"
            notes = [SIMPLIFIED[name]] if name in SIMPLIFIED else []
            stem = QOF_RESOLUTIONS.get(name, "").removesuffix("_cod")
            if stem and not any(stem in e.lower() for e in excludes):
                notes.append(f"QOF resolution {QOF_RESOLUTIONS[name].upper()} not applied (not in the mapping)")
            if any(s in i for i in includes for s in STAND_INS) and name not in SIMPLIFIED:
                notes.append("stand-in codelist")
            prevalence_pct = 100 * on / people if people else None
            # far from the national figure only means something when enough people are expected
            expected = people * percent / 100 if percent else 0
            register_rows.append({
                "register": name, "name": CONDITIONS[name][0], "include": includes, "exclude": excludes,
                "rule": rule if includes else "no codelist in the mapping: not imported",
                "people": registers.on_register.get(name, 0), "taken_off_by_exclude": registers.excluded.get(name, 0),
                "min_age": min_age, "prevalence_percent": None if prevalence_pct is None else round(prevalence_pct, 3),
                "qof_england_percent": percent,
                "ratio_to_qof": None if (prevalence_pct is None or not percent) else round(prevalence_pct / percent, 3),
                "expected_at_qof_rate": round(expected, 1), "notes": notes})
        matched = registers.rows_matched
        lists = codelists.manifest()
        for entry in lists["files"]:
            entry["journal_rows_matched"] = int(matched.get(entry["codelist"], 0)) \
                if entry["coding_system"] == "snomed" else None
        priced = {k: {"rows": int(pricing.priced_rows[k]), "gbp": pricing.priced_pence[k] / 100,
                      "per": unit_costs.per[k], "price_gbp": unit_costs.pence[k] / 100}
                  for k in sorted(pricing.priced_rows) if pricing.priced_rows[k]}
        acs = {"codelist": [m.codelist_id for m in codelists.mapping if m.register == "acs"],
               "emergency_admissions": hospital.emergency, "acs_by_codelist": hospital.acs_codelist,
               "acs_by_riskcap_features": hospital.acs_features, "acs_by_both": hospital.acs_both,
               "only_codelist_top": _top(hospital.acs_only_codelist), "only_features_top": _top(hospital.acs_only_features)}
        return cls(
            extract_date=str(np.datetime64(int(last_day) + 1, "D")), on_invalid=settings.on_invalid,
            inputs={"gp": str(settings.gp), "hospital": str(settings.hospital) if settings.hospital else None,
                    "community": str(settings.community) if settings.community else None,
                    "codelists": str(settings.codelists)},
            files=files, unmapped_codes=codes[:TOP_CODES], registers=register_rows, codelists=lists,
            unit_costs=unit_costs.as_dict(), costs_priced=priced, costs_rounded=pricing.rounded_rows, acs=acs,
            registrations={"people_with_several_periods": registrations.several_periods,
                           "open_registrations_closed_at_death": registrations.closed_at_death,
                           "registrations_ending_after_death_ended_at_it": registrations.cut_at_death,
                           "list_size": "counted from the registrations on the day before the extract date"
                           if list_size_derived else "from the practices extract"},
            hospital={"spells_not_discharged": hospital.not_discharged,
                      "spells_without_primary_diagnosis": hospital.no_diagnosis},
            outputs_rows=outputs_rows, partitions=partitions)

    def as_dict(self) -> dict:
        return {"riskcap_import_report": 1, "extract_date": self.extract_date,
                "extract_date_from": self.extract_date_from, "on_invalid": self.on_invalid, "status": self.status,
                "inputs": self.inputs, "files": self.files, "unmapped_codes_top": self.unmapped_codes,
                "registers": self.registers, "codelists": self.codelists, "unit_costs": self.unit_costs,
                "costs_priced": self.costs_priced, "costs_rounded_to_the_penny": self.costs_rounded,
                "acs_emergency_admissions": self.acs, "registrations": self.registrations,
                "hospital": self.hospital, "outputs_rows": self.outputs_rows, "outputs": self.outputs,
                "rejects": self.rejects, "problems": [p.as_dict() for p in self.problems],
                "ignored_files": self.ignored_files, "warnings": self.warnings, "partitions": self.partitions}

    # --- readable tables -------------------------------------------------------------------------

    def tables(self) -> list:
        """The report as rich tables (what ``riskcap import`` prints)."""
        from rich.table import Table

        out = []
        files = Table(title=f"Extracts read (extract date {self.extract_date}; {self.status})")
        for c in ("extract", "rows read", "mapped", "not mapped", "rejected"):
            files.add_column(c, justify="left" if c == "extract" else "right")
        reasons = Table(title="Rows not mapped, by reason (the contract has no place for them)")
        for c in ("extract", "reason", "rows"):
            reasons.add_column(c, justify="right" if c == "rows" else "left")
        for f in self.files:
            files.add_row(f["extract"], f"{f['rows_read']:,}", f"{f['mapped']:,}",
                          f"{sum(f['unmapped'].values()):,}", f"{f['rejected']:,}")
            for reason, n in f["unmapped"].items():
                reasons.add_row(f["extract"], reason, f"{n:,}")
        out.append(files)
        if reasons.row_count:
            out.append(reasons)
        if self.unmapped_codes:
            codes = Table(title=f"The {len(self.unmapped_codes)} most frequent codes not mapped")
            for c in ("extract", "column", "code", "rows"):
                codes.add_column(c, justify="right" if c == "rows" else "left")
            for c in self.unmapped_codes:
                codes.add_row(c["extract"], c["column"], c["code"], f"{c['rows']:,}")
            out.append(codes)
        regs = Table(title="Registers (prevalence among people registered the day before the extract date; "
                            "QOF England 2019/20)")
        for c in ("register", "people", "taken off", "prevalence", "QOF England", "ratio"):
            regs.add_column(c, justify="left" if c == "register" else "right")
        notes = Table(title="Register rules: what riskcap applies, and what it leaves out of QOF's")
        notes.add_column("register")
        notes.add_column("rule and notes")
        for r in self.registers:
            prev = "-" if r["prevalence_percent"] is None else f"{r['prevalence_percent']:.2f}%"
            qof = "-" if r["qof_england_percent"] is None else f"{r['qof_england_percent']:.2f}%"
            ratio = r["ratio_to_qof"]
            far = ratio is not None and r["expected_at_qof_rate"] >= 20 and not 0.5 <= ratio <= 2
            regs.add_row(r["register"] + ("" if r["include"] else " [yellow](no codelist)[/yellow]"),
                         f"{r['people']:,}", f"{r['taken_off_by_exclude']:,}", prev, qof,
                         ("-" if ratio is None else f"{ratio:.2f}") + (" [red]check the codelist[/red]" if far else ""))
            notes.add_row(r["register"], "; ".join([r["rule"], *r["notes"]]))
        out += [regs, notes]
        lists = Table(title="Codelists used (full SHA-256 and file names in the JSON report)")
        for c in ("codelist", "codes", "rows matched", "sha256", "version checked"):
            lists.add_column(c, justify="right" if c in ("codes", "rows matched") else "left")
        for f in self.codelists["files"]:
            matched = "-" if f["journal_rows_matched"] is None else f"{f['journal_rows_matched']:,}"
            lists.add_row(f["codelist"], f"{f['codes']:,}", matched, f["sha256"][:12],
                          "yes" if f["verified"].startswith("codelists.json") else "no")
        out.append(lists)
        if self.costs_priced or self.costs_rounded:
            costs = Table(title="Costs priced from the unit-cost table (the extract gave none)")
            for c in ("price", "per", "GBP each", "rows", "GBP"):
                costs.add_column(c, justify="left" if c in ("price", "per") else "right")
            for k, v in self.costs_priced.items():
                costs.add_row(k, v["per"], gbp(v["price_gbp"], 2, symbol=""), f"{v['rows']:,}", gbp(v["gbp"], 2, symbol=""))
            if self.costs_rounded:
                costs.add_row("rounded to the penny", "-", "-", f"{self.costs_rounded:,}", "-")
            out.append(costs)
        acs = self.acs
        if acs["emergency_admissions"]:
            t = Table(title="Emergency admissions with an ambulatory-care-sensitive primary diagnosis")
            t.add_column("definition")
            t.add_column("admissions", justify="right")
            t.add_row("all emergency admissions", f"{acs['emergency_admissions']:,}")
            t.add_row(f"ACS by the codelist ({', '.join(acs['codelist']) or 'none'})", f"{acs['acs_by_codelist']:,}")
            t.add_row("ACS by riskcap's features (NHS Outcomes Framework 2.3.i stems)",
                      f"{acs['acs_by_riskcap_features']:,}")
            t.add_row("both", f"{acs['acs_by_both']:,}")
            out.append(t)
        other = Table(title="Also worth knowing")
        other.add_column("item")
        other.add_column("value", justify="right")
        for k, v in {**self.registrations, **self.hospital}.items():
            other.add_row(k.replace("_", " "), f"{v:,}" if isinstance(v, int) else str(v))
        other.add_row("extract date from", self.extract_date_from)
        for path in self.ignored_files:
            other.add_row("ignored (not an extract riskcap reads)", path)
        out.append(other)
        return out

    def text(self) -> str:
        """The tables as plain text."""
        from rich.console import Console

        console = Console(record=True, width=160, file=_Null(), color_system=None)
        for table in self.tables():
            console.print(table)
        return console.export_text()


class _Null:
    def write(self, _):
        return 0

    def flush(self):
        pass


def _top(counter: Counter, n: int = 10) -> list[dict]:
    return [{"primary_diagnosis": k, "admissions": v}
            for k, v in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]

