"""Numbers as text: mean ± std, means with their intervals, signed gains, p-values, and tables as Markdown (polars' own
Markdown layout)."""

from __future__ import annotations

import json

import polars as pl

# Columns rounded to 0.1 (percentages and percentage points); other floats keep 4 significant digits.
ONE_DECIMAL_SUFFIXES = ("_pct", "_mean", "_std", "_low", "_high")


def pm(mean: float | None, std: float | None) -> str:
    """``55.0 ± 7.1`` (``55.0`` with no spread, ``–`` with no number)."""
    if mean is None:
        return "–"
    return f"{mean:.1f}" if std is None else f"{mean:.1f} ± {std:.1f}"


def interval(low: float | None, high: float | None, sign: bool = False) -> str:
    """``[41.2, 52.8]`` (signed for gains: ``[+0.5, +4.9]``); empty with no interval."""
    if low is None or high is None:
        return ""
    return f"[{low:+.1f}, {high:+.1f}]" if sign else f"[{low:.1f}, {high:.1f}]"


def mean_ci(mean: float | None, low: float | None, high: float | None, sign: bool = False) -> str:
    """``47.0 [41.2, 52.8]``: a mean and its 95 % interval (``47.0`` with none, ``–`` with no number)."""
    if mean is None:
        return "–"
    text = f"{mean:+.1f}" if sign else f"{mean:.1f}"
    return f"{text} {interval(low, high, sign)}" if low is not None and high is not None else text


def signed(x: float | None) -> str:
    return "" if x is None else f"{x:+.1f}"


def p_value(p: float | None) -> str:
    return "" if p is None else (f"{p:.3f}" if p >= 0.001 else "<0.001")


def _one_decimal(column: str) -> bool:
    return column.endswith(ONE_DECIMAL_SUFFIXES) or "gain" in column


def as_text(frame: pl.DataFrame, markdown: bool = True) -> pl.DataFrame:
    """Every cell as the text a reader sees: floats rounded, NaN and null empty, newlines as spaces, and for a
    Markdown table pipes escaped."""
    nested = [n for n, d in frame.schema.items() if isinstance(d, (pl.List, pl.Array, pl.Struct))]
    frame = frame.with_columns(  # a confusion matrix or a list of values: as JSON
        pl.Series(n, [None if v is None else json.dumps(v) for v in frame[n].to_list()], dtype=pl.String)
        for n in nested
    )
    columns = []
    for name, dtype in frame.schema.items():
        col = pl.col(name)
        if dtype.is_float():
            col = pl.when(col.is_nan()).then(None).otherwise(col)
            col = col.round(1) if _one_decimal(name) else col.round_sig_figs(4)
        text = col.cast(pl.String).fill_null("")
        if markdown:
            text = text.str.replace_all("|", "\\|", literal=True)
        columns.append(text.str.replace_all("\n", " ").alias(name))
    return frame.select(columns)


def to_markdown(frame: pl.DataFrame) -> str:
    """A GitHub-flavoured Markdown table, laid out by polars (``tbl_formatting="MARKDOWN"``); floats rounded
    (``*_pct``, means, stds and gains to 0.1, others to 4 significant digits)."""
    if not frame.width:
        return "_(empty)_"
    with pl.Config(
        tbl_formatting="MARKDOWN",
        tbl_hide_column_data_types=True,
        tbl_hide_dataframe_shape=True,
        tbl_rows=-1,
        tbl_cols=-1,
        fmt_str_lengths=10_000,
        tbl_width_chars=65_535,  # polars' limit: no wrapping
    ):
        text = str(as_text(frame))
    return text + ("\n\n_(no rows)_" if not frame.height else "")
