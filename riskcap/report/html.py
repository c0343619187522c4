"""Render report sections as one self-contained HTML file.

Images are embedded as ``data:`` URIs and the style sheet is inline, so the file opens
without a network. A small inline script marks each image ``data-loaded="yes"`` or ``"no"``
once the page has loaded and fills ``#image-check`` with the counts (the rendering test
reads them from headless Chromium's DOM; a reader sees "all N charts loaded"). There are no
timestamps: the same sections give the same bytes.
"""
from __future__ import annotations

import base64
import math
from dataclasses import dataclass, field
from html import escape

@dataclass
class Figure:
    """One chart: PNG bytes, a title, alt text and the one-line reading."""

    key: str
    title: str
    png: bytes
    reading: str


@dataclass
class Table:
    """A small table of already formatted text; ``numeric`` columns are right-aligned."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    numeric: list[bool] | None = None
    note: str = ""


@dataclass
class Section:
    id: str
    title: str
    intro: str = ""
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    not_run: str | None = None
    notes: list[str] = field(default_factory=list)


# --- Formatting ------------------------------------------------------------------------

def missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def pct(value, digits: int = 1, signed: bool = False) -> str:
    if missing(value):
        return "-"
    return f"{value:+.{digits}%}" if signed else f"{value:.{digits}%}"


def num(value, digits: int = 3) -> str:
    return "-" if missing(value) else f"{value:.{digits}f}"


CSS = """
body { font-family: "Segoe UI", Arial, sans-serif; color: #222; margin: 0; background: #f6f6f4; }
header { background: #005eb8; color: white; padding: 18px 32px; }
header h1 { margin: 0 0 4px 0; font-size: 24px; }
header p { margin: 0; opacity: 0.9; }
nav { background: white; border-bottom: 1px solid #ddd; padding: 8px 32px; font-size: 14px; }
nav a { margin-right: 14px; color: #005eb8; text-decoration: none; }
main { max-width: 1100px; margin: 0 auto; padding: 8px 24px 40px 24px; }
section { background: white; border: 1px solid #e2e2e2; border-radius: 6px; padding: 12px 24px; margin: 18px 0; }
section h2 { color: #005eb8; margin-top: 6px; }
.notrun { color: #8a5300; background: #fff4e0; border-left: 4px solid #e69f00; padding: 8px 12px; }
.headline { display: flex; flex-wrap: wrap; gap: 12px; margin: 16px 0; }
.headline div { background: white; border: 1px solid #e2e2e2; border-radius: 6px; padding: 8px 14px; }
.headline b { display: block; font-size: 20px; color: #005eb8; }
figure { margin: 16px 0 24px 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 15px; margin-top: 6px; }
figcaption .reading { font-weight: 600; }
.tablewrap { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0 4px 0; }
th, td { border-bottom: 1px solid #e6e6e6; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f0f4f8; }
td:first-child { white-space: nowrap; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
caption { text-align: left; font-weight: 600; padding: 6px 0; }
.tablenote { font-size: 12px; color: #555; margin: 0 0 16px 0; }
.note { font-size: 13px; color: #555; }
dl.about { display: grid; grid-template-columns: max-content auto; gap: 2px 16px; font-size: 13px; }
dl.about dt { font-weight: 600; }
dl.about dd { margin: 0; word-break: break-all; }
#image-check { font-size: 12px; color: #555; }
"""

SCRIPT = """
window.addEventListener('load', function () {
  var images = document.images, loaded = 0, broken = 0;
  for (var i = 0; i < images.length; i++) {
    var ok = images[i].complete && images[i].naturalWidth > 0;
    images[i].setAttribute('data-loaded', ok ? 'yes' : 'no');
    if (ok) { loaded++; } else { broken++; }
  }
  var check = document.getElementById('image-check');
  check.setAttribute('data-images', images.length);
  check.setAttribute('data-loaded', loaded);
  check.setAttribute('data-broken', broken);
  check.textContent = broken ? broken + ' of ' + images.length + ' charts failed to load'
                             : 'All ' + images.length + ' charts loaded.';
});
"""


def _figure(fig: Figure) -> str:
    data = base64.b64encode(fig.png).decode("ascii")
    return (f'<figure id="fig-{escape(fig.key)}">'
            f'<img src="data:image/png;base64,{data}" alt="{escape(fig.title)}: {escape(fig.reading)}" '
            f'data-figure="{escape(fig.key)}">'
            f'<figcaption><span class="reading">{escape(fig.reading)}</span></figcaption></figure>')


def _table(table: Table) -> str:
    numeric = table.numeric or [False] * len(table.columns)
    head = "".join(f'<th{" class=n" if n else ""}>{escape(c)}</th>' for c, n in zip(table.columns, numeric))
    body = "".join("<tr>" + "".join(f'<td{" class=n" if n else ""}>{escape(str(v))}</td>'
                                    for v, n in zip(row, numeric)) + "</tr>" for row in table.rows)
    note = f'<p class="tablenote">{escape(table.note)}</p>' if table.note else ""
    return (f'<div class="tablewrap"><table><caption>{escape(table.title)}</caption><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>{note}")


def _section(section: Section) -> str:
    parts = [f'<section id="{escape(section.id)}" data-status="{"not-run" if section.not_run else "ok"}">',
             f"<h2>{escape(section.title)}</h2>"]
    if section.not_run:
        parts.append(f'<p class="notrun">Not run: {escape(section.not_run)}</p>')
    if section.intro:
        parts.append(f"<p>{escape(section.intro)}</p>")
    parts.extend(_figure(f) for f in section.figures)
    parts.extend(_table(t) for t in section.tables)
    parts.extend(f'<p class="note">{escape(n)}</p>' for n in section.notes)
    parts.append("</section>")
    return "\n".join(parts)


def render_html(title: str, subtitle: str, headline: list[tuple[str, str]], sections: list[Section],
                about: list[tuple[str, str]]) -> str:
    """The whole report as one HTML document (a str)."""
    nav = "".join(f'<a href="#{escape(s.id)}">{escape(s.title.split(":")[0])}</a>' for s in sections)
    tiles = "".join(f"<div><b>{escape(v)}</b>{escape(k)}</div>" for k, v in headline)
    about_html = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in about)
    body = "\n".join(_section(s) for s in sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f"<header><h1>{escape(title)}</h1><p>{escape(subtitle)}</p></header>\n<nav>{nav}</nav>\n<main>\n"
        f'<div class="headline">{tiles}</div>\n{body}\n'
        f'<section id="about" data-status="ok"><h2>About this report</h2><dl class="about">{about_html}</dl>'
        '<p id="image-check" data-images="" data-loaded="" data-broken="">Charts not checked (scripts are off).</p>'
        "</section>\n</main>\n"
        f"<script>{SCRIPT}</script>\n</body>\n</html>\n"
    )
