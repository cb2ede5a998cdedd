"""Write a study's report: every analysis that applies into ``out/<analysis>/`` and one page linking them,
``out/index.md``, and ``out/index.html``, the page a person reads (``ablate.report.html``), the summary first.
``python -m ablate.report`` calls it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ablate.io import atomic_write_text
from ablate.report import html
from ablate.report.sections import applicable, build
from ablate.results.reader import Results


def write_report(res: Results, out: str | Path, which: str = "val", only: Sequence[str] | None = None) -> Path:
    """Run the analyses that apply (or ``only`` those), write each into ``out/<analysis>/`` and an
    ``out/index.md`` linking them, and ``out/index.html``, the same sections as one page with every figure
    embedded beside its table. ``which``: the shown numbers (val, last or oracle; see ``ablate.results.selection``)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    header = [f"Results: `{res.path}`", f"Study file: `{res.study.get('file', '?')}`"]
    parts = [f"# Report: {res.name}", "", f"{header[0]}  ", header[1], ""]
    sections = []
    for name in only or applicable(res):
        section = build(res, name, which)
        sections.append(section)
        parts += [section.markdown(prefix=f"{name}/"), ""]
        section.write(out / name)  # closes the figures: after both pages have used them
    index = out / "index.md"
    atomic_write_text(index, "\n".join(parts))
    atomic_write_text(out / "index.html", html.page(f"Report: {res.name}", header, sections))
    return index
