"""``riskcap validate``: check a data folder against the data contract."""
from __future__ import annotations

from pathlib import Path

import click

from riskcap.commands.options import DATE, data_option, on_invalid_option
from riskcap.data.load import validate_data
from riskcap.data.write import OWNER_ONLY, write_json
from riskcap.manifest import claim_file, json_with_keys


@click.command("validate")
@data_option
@click.option("--as-of", type=DATE, default=None,
              help="Dates after this day are errors (default: today).")
@on_invalid_option
@click.option("--rejects", "rejects_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("rejects"),
              show_default=True, help="Where quarantined rows are written (<table>_rejects.parquet and .csv).")
@click.option("--summary", "summary_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the summary (counts and problems) as JSON.")
def validate(data_dir: Path, as_of, on_invalid: str, rejects_dir: Path, summary_path: Path | None):
    """Check a data folder against the data contract (docs/data-contract.md).

    Prints the rows per table (in / with problems / used / quarantined) and every problem
    found, each naming the file, column, rule, row count and up to 5 examples. Exits 0
    when the data can be used (clean, or bad rows quarantined) and 2 otherwise.

    \b
    Example:
        riskcap validate --data synthetic_data --as-of 2025-03-31
        riskcap validate --data extract/ --on-invalid quarantine --rejects out/rejects
    """
    from rich.console import Console
    from rich.text import Text

    console = Console(soft_wrap=True)
    if summary_path is not None:
        claim_file(summary_path, json_with_keys("data_dir", "as_of", "status", "tables", "problems"), "validate summary")
    tables, summary = validate_data(data_dir, as_of=as_of, on_invalid=on_invalid,
                                    rejects_dir=rejects_dir if on_invalid == "quarantine" else None)
    console.print(rows_table(summary))
    if summary.problems:
        console.print(Text(f"{len(summary.problems)} problem(s):", style="bold"))
        for problem in summary.problems:
            console.print(Text(f"  - {problem}"))
    if summary_path is not None:
        write_json(summary.as_dict(), summary_path, OWNER_ONLY)  # examples of bad values: identifiers
    if tables is None:
        console.print(Text(summary.error_message().splitlines()[0], style="red"))
        raise SystemExit(2)
    if summary.status == "quarantined":
        total = sum(summary.rows_quarantined.values())
        console.print(Text(f"{total:,} row(s) quarantined; rejects written to {rejects_dir}/ "
                           f"(<table>_rejects.parquet and .csv, with a reason per row)", style="yellow"))
    else:
        console.print(Text("valid: no problems found", style="green"))


def rows_table(summary):
    """A rich table of a load summary's rows per table: in / with problems / used / quarantined."""
    from rich.table import Table

    table = Table(title=f"{summary.data_dir} (as of {summary.as_of}, {summary.status})")
    for header in ("table", "file", "rows in", "with problems", "used", "quarantined"):
        table.add_column(header, justify="left" if header in ("table", "file") else "right")
    for name in summary.table_names:
        rows_in = summary.rows_in.get(name)
        table.add_row(name, Path(summary.files[name]).name if summary.files.get(name) else "-",
                      "-" if rows_in is None else f"{rows_in:,}", f"{summary.rows_failing.get(name, 0):,}",
                      f"{summary.rows_used.get(name, 0):,}", f"{summary.rows_quarantined.get(name, 0):,}")
    return table
