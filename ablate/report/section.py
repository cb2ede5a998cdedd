"""A section of a report: its notes, tables and figures, and how it is written (each table as ``NAME.csv`` with
the numbers at full precision and ``NAME.md`` rounded for reading, each figure as ``NAME.png``) or shown inline
on an index page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from ablate.report import plots
from ablate.results.formatting import to_markdown


@dataclass
class Table:
    name: str
    title: str
    data: pl.DataFrame  # written to NAME.csv
    display: pl.DataFrame | None = None  # written to NAME.md (default: ``data``, floats rounded)
    caption: str = ""

    @property
    def shown(self) -> pl.DataFrame:
        return self.display if self.display is not None else self.data


@dataclass
class Fig:
    name: str
    title: str
    figure: Any  # a matplotlib Figure
    caption: str = ""


def heading(item: Table | Fig, level: int) -> str:
    """A table's or figure's markdown heading, with its caption as a paragraph below when it has one."""
    return f"{'#' * level} {item.title}" + (f"\n\n{item.caption}" if item.caption else "")


def _csv_ready(frame: pl.DataFrame) -> pl.DataFrame:
    """Nested columns (lists, structs) as text: CSV holds flat values only."""
    return frame.with_columns(
        [pl.col(c).cast(pl.String) for c, d in frame.schema.items() if isinstance(d, (pl.List, pl.Struct))]
    )


@dataclass
class Section:
    name: str
    title: str
    notes: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Fig] = field(default_factory=list)

    def heading(self, level: int) -> str:
        """The section's markdown heading, with its notes as a list below."""
        return f"{'#' * level} {self.title}" + ("\n\n" + "\n".join(f"- {n}" for n in self.notes) if self.notes else "")

    def table(self, name: str) -> Table:
        return next(t for t in self.tables if t.name == name)

    def figure(self, name: str) -> Fig:
        return next(f for f in self.figures if f.name == name)

    def write(self, out: str | Path, close: bool = True) -> list[Path]:
        """Write every table (.csv, .md) and figure (.png, 150 dpi) into ``out``; return the paths written."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for t in self.tables:
            _csv_ready(t.data).write_csv(out / f"{t.name}.csv")
            (out / f"{t.name}.md").write_text(heading(t, 1) + "\n\n" + to_markdown(t.shown) + "\n")
            written += [out / f"{t.name}.csv", out / f"{t.name}.md"]
        for f in self.figures:
            f.figure.savefig(out / f"{f.name}.png", dpi=150, bbox_inches="tight")
            written.append(out / f"{f.name}.png")
            if close:
                plots.plt.close(f.figure)
        return written

    def markdown(self, prefix: str = "") -> str:
        """The section for an index page: notes, each table inline (with links to its files), each figure."""
        lines = [self.heading(2), ""]
        for t in self.tables:
            lines += [
                heading(t, 3),
                "",
                to_markdown(t.shown),
                "",
                f"Files: [{t.name}.csv]({prefix}{t.name}.csv), [{t.name}.md]({prefix}{t.name}.md)",
                "",
            ]
        for f in self.figures:
            lines += [heading(f, 3), "", f"![{f.title}]({prefix}{f.name}.png)", ""]
        return "\n".join(lines)
