"""A study's results: records, the Parquet tables, selection, statistics, the summary. No torch."""
