"""``riskcap casefind``: case-finding lists per practice for multidisciplinary teams."""
from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from riskcap.casefinding.eligibility import EXCLUSIONS
from riskcap.casefinding.run import casefind as run_casefind
from riskcap.casefinding.selection import SelectionRule
from riskcap.commands.options import data_option, engine_options, index_date_option
from riskcap.data.write import OWNER_ONLY
from riskcap.manifest import RunManifest
from riskcap.pseudonymise import KEY_ENV, key_file_is_private, load_key
from riskcap.stream.engines import get_engine


@click.command("casefind")
@click.option("--scores", "scores_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Scores file from `riskcap score` (parquet or CSV).")
@data_option
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output folder: new, empty, or an earlier casefind run's (created readable by you only).")
@click.option("--top", default=None, metavar="PERCENT",
              help="List the top PERCENT of each practice's eligible list, e.g. 2% or 0.5% (default 2%).")
@click.option("--top-n", type=int, default=None, metavar="N", help="List the top N of each practice's eligible list.")
@click.option("--min-score", type=int, default=None, metavar="S", help="List everyone eligible with a score of S (0-100) or more.")
@click.option("--within", type=click.Choice(["practice", "population"]), default="practice", show_default=True,
              help="Apply --top / --top-n to each practice, or to the whole population then split by practice.")
@click.option("--previous", "previous_dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="A previous casefind output: adds change (new / up / down / unchanged). Needs the same key.")
@index_date_option("casefind")
@click.option("--key-file", type=click.Path(exists=True, dir_okay=False), default=None,
              help=f"File holding the pseudonymisation key (default: ${KEY_ENV}).")
@click.option("--reidentify", is_flag=True, help="Add NHS numbers to each practice's own files (needs a key).")
@click.option("--include-children", is_flag=True, help="Also list people under 18.")
@click.option("--exclude-palliative", is_flag=True, help="Do not list people on the palliative care register.")
@click.option("--exclude-care-home", is_flag=True, help="Do not list people living in a care home.")
@engine_options
@click.option("--pyramid", "pyramid_path", default=None, metavar="YAML",
              help="Recompute tiers with this pyramid (default: the scores' tiers, configs/tiers.yaml).")
def casefind(scores_path, data_dir, out_dir, top, top_n, min_score, within, previous_dir, index_date, key_file,
             reidentify, include_children, exclude_palliative, exclude_care_home, pyramid_path, engine_name,
             scheduler):
    """Case-finding lists: each practice's people most at risk of an emergency admission.

    Writes practices/<code>.csv and .xlsx (rank, pseudonymised id, age, sex, score, tier,
    reasons, LTCs, last-12-month activity, impactable flag), index.csv and summary.json.
    Opted-out, dead and deregistered people are never listed; every exclusion is counted.
    Ids are keyed pseudonyms (key in $RISKCAP_PSEUDONYM_KEY or --key-file; without one a
    one-off random key is used and said so).

    \b
    Example:
        export RISKCAP_PSEUDONYM_KEY=$(cat ~/.riskcap.key)
        riskcap casefind --scores run/scores.parquet --data icb-data --out lists --top 2%
        riskcap casefind --scores run/scores.parquet --data icb-data --out lists-may \\
            --top-n 50 --previous lists --exclude-palliative
    """
    console = Console(stderr=True)
    rule = SelectionRule.parse(top=top, top_n=top_n, min_score=min_score, within=within)
    key = load_key(key_file, allow_random=not (reidentify or previous_dir))
    if key.source == "random":
        console.print(f"[yellow]No pseudonymisation key (${KEY_ENV} or --key-file): using a one-off random key. "
                      "pseudo_ids will not match any other run.[/yellow]")
    elif key.source == "file" and not key_file_is_private(key_file):
        console.print(f"[yellow]Warning: key file {key_file} is readable by others; chmod 600 it.[/yellow]")

    manifest = RunManifest(Path(out_dir), private=True)
    with Progress(TextColumn("[bold]writing lists"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("", total=None)

        def progress(done, total, code):
            bar.update(task, completed=done, total=total, description=code)

        with get_engine(engine_name, scheduler) as engine:
            result = run_casefind(scores_path, data_dir, out_dir, rule, key=key, index_date=index_date,
                                  previous_dir=previous_dir, reidentify=reidentify,
                                  include_children=include_children, exclude_palliative=exclude_palliative,
                                  exclude_care_home=exclude_care_home, pyramid_path=pyramid_path, progress=progress,
                                  engine=None if engine.name == "local" else engine)  # local: one read
    console.print(f"list date {result.list_date}")
    manifest.add_index_date("casefind", result.list_date)
    manifest.add_input("scores", scores_path)
    manifest.add_input("data", data_dir)
    if previous_dir:
        manifest.add_input("previous", previous_dir)
    manifest.add_config("pyramid", result.summary["pyramid"])
    manifest.add_config("selection", result.summary["selection"])
    manifest.write(mode=OWNER_ONLY)
    s = result.summary
    table = Table(title=f"Case-finding lists at {s['list_date']}: {s['selection']['description']}")
    table.add_column("practices", justify="right")
    table.add_column("scored", justify="right")
    table.add_column("eligible", justify="right")
    table.add_column("listed", justify="right")
    for tier in s["listed_by_tier"]:
        table.add_column(tier, justify="right")
    table.add_row(str(len(s["practices"])), f"{s['scored']:,}", f"{s['eligible']:,}", f"{s['listed']:,}",
                  *(f"{n:,}" for n in s["listed_by_tier"].values()))
    console.print(table)
    excluded = Table(title="Excluded (each person once, first reason that applies)")
    excluded.add_column("reason")
    excluded.add_column("people", justify="right")
    for reason in EXCLUSIONS:
        excluded.add_row(reason, f"{s['excluded'][reason]:,}")
    console.print(excluded)
    check = s["reasons_check"]
    if check["not_matching"]:
        console.print(f"[yellow]{check['not_matching']:,} of {check['checked']:,} reasons do not match the people's data "
                      f"at {s['list_date']} (e.g. {check['examples'][0]!r}): were the scores made from other data "
                      "or another date? See reasons_check in summary.json.[/yellow]")
    if "change" in s:
        console.print("Since the previous list: " + ", ".join(f"{k} {v:,}" for k, v in s["change"].items()))
    click.echo(str(result.out_dir))
