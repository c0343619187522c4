"""``riskcap import``: GP, hospital and community extracts into a data folder of the contract."""
from __future__ import annotations

from pathlib import Path

import click

from riskcap.commands.options import on_invalid_option, partition_people_option
from riskcap.ingest.run import PARTITION_PEOPLE as IMPORT_PARTITION_PEOPLE

_FOLDER = click.Path(exists=True, file_okay=False, path_type=Path)


@click.command("import")
@click.option("--gp", "gp_dir", required=True, type=_FOLDER,
              help="GP extracts: practices, registrations, events (the coded journal), appointments, prescriptions.")
@click.option("--hospital", "hospital_dir", type=_FOLDER, default=None,
              help="Hospital extracts: apc (SUS admitted patient care spells), outpatients, ae (ECDS).")
@click.option("--community", "community_dir", type=_FOLDER, default=None,
              help="Community (CSDS), mental_health (MHSDS) and social_care extracts.")
@click.option("--codelists", "codelists_dir", required=True, type=_FOLDER,
              help="Folder of OpenCodelists CSV downloads named in the mapping (docs/import.md).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Data folder to write (new, empty, or an earlier import's, which is replaced).")
@click.option("--mapping", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Register -> codelist mapping (default: the shipped configs/codelists.txt).")
@click.option("--unit-costs", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Prices for rows without a cost (default: the shipped configs/unit_costs.yaml).")
@click.option("--extract-date", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="The day the extracts were taken, the first day they do not cover (written to OUT/extract.json, "
                   "where later commands find the data's end): dates on or after it are errors; registers and "
                   "list sizes are as at the day before. Default: the day after the latest date in the extracts.")
@on_invalid_option
@partition_people_option(IMPORT_PARTITION_PEOPLE)
@click.option("--no-check", is_flag=True, default=False,
              help="Skip reading the written folder back through the contract's checks.")
def import_command(gp_dir, hospital_dir, community_dir, codelists_dir, out_dir, mapping, unit_costs, extract_date,
                   on_invalid, partition_people, no_check):
    """Import GP, hospital and community extracts into a data folder of the contract.

    Maps SNOMED CT journals to registers with OpenCodelists codelists, SUS admission
    methods and ICD-10 diagnoses to settings, prices rows without a cost from a unit-cost
    table, and writes practices, persons, registrations, conditions and activity (owner-only)
    that pass `riskcap validate`, with import_report.json and .txt: rows read, mapped, not
    mapped and rejected per file, the codes most often not mapped, register prevalence
    against QOF, codelists with checksums. Nothing is written unless the whole import
    succeeds. docs/import.md describes every extract and column.

    \b
    Example:
        riskcap import --gp extracts/gp --hospital extracts/hospital \\
            --codelists codelists --out data --extract-date 2025-04-01
        riskcap validate --data data --as-of 2025-03-31
    """
    import time

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from riskcap.ingest.run import REPORT, ImportSettings, import_extracts

    console = Console(stderr=True)
    settings = ImportSettings(gp=gp_dir, codelists=codelists_dir, out=out_dir, hospital=hospital_dir,
                              community=community_dir, mapping=mapping, unit_costs=unit_costs,
                              extract_date=extract_date.date() if extract_date else None, on_invalid=on_invalid,
                              partition_people=partition_people)
    started = time.perf_counter()
    with Progress(TextColumn("[bold]{task.fields[stage]}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("partitions, {task.fields[people]:,} people"), TimeElapsedColumn(),
                  console=console) as bar:
        tasks = {}

        def progress(info):
            if info.stage not in tasks:
                tasks[info.stage] = bar.add_task(info.stage, total=info.partitions, stage=info.stage, people=0)
            bar.update(tasks[info.stage], total=info.partitions, completed=info.done, people=info.people)

        report = import_extracts(settings, check=not no_check, progress=progress)
    out = Console(soft_wrap=False)
    for warning in report.warnings:
        console.print(f"[yellow]warning: {warning}[/yellow]")
    for table in report.tables():
        out.print(table)
    rejected = sum(f["rejected"] for f in report.files)
    if rejected:
        out.print(f"[yellow]{rejected:,} row(s) quarantined; see {out_dir}/rejects/ (a reason per row)[/yellow]")
    out.print(f"Wrote {out_dir} ({', '.join(f'{k} {v:,}' for k, v in report.outputs_rows.items())}) in "
              f"{time.perf_counter() - started:.1f} s; the report is {out_dir / REPORT}")
