"""Write a study's report: every analysis that applies into ``out/<analysis>/`` and one page linking them,
``out/index.md`` (and ``out/index.html``), the summary first. ``python -m ablate.report`` calls it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ablate.report.sections import applicable, build
from ablate.results.reader import Results

HTML_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;font-size:13px;margin:.5em 0}th,td{border:1px solid #ccc;padding:3px 8px}"
    "th{background:#f3f3f3}img{max-width:100%;border:1px solid #eee}code{background:#f6f6f6;padding:0 3px}"
)


def write_report(res: Results, out: str | Path, which: str = "val", only: Sequence[str] | None = None) -> Path:
    """Run the analyses that apply (or ``only`` those), write each into ``out/<analysis>/`` and an
    ``out/index.md`` linking them (and ``out/index.html``, the same page, when the ``markdown`` package is
    installed). ``which``: the shown numbers (val, last or oracle; see ``ablate.results.selection``)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    parts = [f"# Report: {res.name}", "", f"Results: `{res.path}`  ", f"Study file: `{res.study.get('file', '?')}`", ""]
    for name in only or applicable(res):
        section = build(res, name, which)
        section.write(out / name)
        parts += [section.markdown(prefix=f"{name}/"), ""]
    index = out / "index.md"
    index.write_text("\n".join(parts))
    html = to_html("\n".join(parts), f"Report: {res.name}")
    if html is not None:
        (out / "index.html").write_text(html)
    return index


def to_html(markdown_text: str, title: str) -> str | None:
    """``index.md`` as a standalone HTML page (the ``markdown`` package, which marimo installs); None without it."""
    try:
        import markdown
    except ImportError:
        return None
    body = markdown.markdown(markdown_text, extensions=["tables"])
    return (
        f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{title}</title><style>{HTML_STYLE}</style>"
        f"</head>\n<body>\n{body}\n</body></html>\n"
    )
