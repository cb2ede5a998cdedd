"""A report as one page a person reads, ``index.html``: the answer first (the summary's statements and table, then
the ablation ladder's figure when the study has one), a contents line, then every section with each figure beside
the table of the same name, its caption under it, and links to the table's files. Self-contained HTML written from
the sections themselves (no Markdown conversion, no script), with the figures as relative links to their PNGs."""

from __future__ import annotations

import html
import re

import polars as pl

from ablate.report.section import Fig, Section, Table
from ablate.results.formatting import as_text

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1400px;margin:2em auto;padding:0 1em;color:#222;line-height:1.4}
table{border-collapse:collapse;font-size:13px;margin:.5em 0}th,td{border:1px solid #ccc;padding:3px 8px}
th{background:#f3f3f3;text-align:left}code{background:#f6f6f6;padding:0 3px}
.pair{display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start;margin:1em 0 2em}
figure{margin:0;flex:1 1 560px;max-width:760px}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:13px;color:#444;margin-top:.3em}.table{flex:1 1 420px;overflow-x:auto}
.answer{border-left:4px solid #2a9d8f;padding:.2em 1em;background:#f7fbfa}.files{font-size:12px;color:#555}
nav{margin:1em 0;font-size:14px}nav a{margin-right:1em}
""".strip()


def inline(text: str) -> str:
    """A note or caption as HTML: escaped, with Markdown's `code` spans kept as code."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def table_html(frame: pl.DataFrame) -> str:
    """A table with the numbers rounded as in its .md file (``ablate.results.formatting.as_text``)."""
    if not frame.width:
        return "<p><em>(empty)</em></p>"
    shown = as_text(frame, markdown=False)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in shown.columns)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>" for row in shown.iter_rows())
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>" + (
        "" if frame.height else "<p><em>(no rows)</em></p>"
    )


def _table_block(table: Table, prefix: str) -> str:
    files = f"{prefix}{table.name}"
    return (
        f"<div class='table'><h4>{inline(table.title)}</h4>"
        + (f"<p>{inline(table.caption)}</p>" if table.caption else "")
        + table_html(table.shown)
        + f"<p class='files'>Files: <a href='{files}.csv'>{table.name}.csv</a>, "
        f"<a href='{files}.md'>{table.name}.md</a></p></div>"
    )


def _figure_block(fig: Fig, prefix: str) -> str:
    caption = inline(fig.title) + (f": {inline(fig.caption)}" if fig.caption else "")
    return (
        f"<figure><img src='{prefix}{fig.name}.png' alt='{html.escape(fig.title, quote=True)}'>"
        f"<figcaption>{caption}</figcaption></figure>"
    )


def _pair(fig: Fig, table: Table | None, prefix: str) -> str:
    return f"<div class='pair'>{_figure_block(fig, prefix)}{_table_block(table, prefix) if table else ''}</div>"


def section_html(section: Section, prefix: str, skip: tuple[str, ...] = ()) -> str:
    """The section: its heading and notes, each figure beside its same-named table, then the other tables."""
    parts = [f"<h2 id='{section.name}'>{inline(section.title)}</h2>"]
    if section.notes:
        parts.append("<ul>" + "".join(f"<li>{inline(n)}</li>" for n in section.notes) + "</ul>")
    paired = set()
    for fig in section.figures:
        if fig.name in skip:
            continue
        table = next((t for t in section.tables if t.name == fig.name), None)
        paired.add(fig.name)
        parts.append(_pair(fig, table, prefix))
    parts += [_table_block(t, prefix) for t in section.tables if t.name not in paired and t.name not in skip]
    return "\n".join(parts)


def page(title: str, header: list[str], sections: list[Section]) -> str:
    """The whole page. ``sections`` in report order, the summary first; the ladder's figure (and its table) are
    lifted into the answer, right under the summary, and not repeated in their section."""
    by_name = {s.name: s for s in sections}
    answer = []
    if "summary" in by_name:
        answer.append(section_html(by_name["summary"], "summary/"))
    ladder = by_name.get("ablation")
    lifted = ladder is not None and any(f.name == "ladder" for f in ladder.figures)
    if lifted:
        fig = ladder.figure("ladder")
        table = next((t for t in ladder.tables if t.name == "ladder"), None)
        answer.append(_pair(fig, table, "ablation/"))
    nav = " ".join(f"<a href='#{s.name}'>{inline(s.title)}</a>" for s in sections)
    rest = [
        section_html(s, f"{s.name}/", ("ladder",) if s.name == "ablation" and lifted else ())
        for s in sections
        if s.name != "summary"
    ]
    return (
        f"<!doctype html>\n<html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head>\n<body>\n<h1>{html.escape(title)}</h1>\n"
        + "".join(f"<p>{inline(line)}</p>" for line in header)
        + f"\n<div class='answer'>\n{''.join(answer)}\n</div>\n<nav>Sections: {nav}</nav>\n"
        + "\n".join(rest)
        + "\n</body></html>\n"
    )
