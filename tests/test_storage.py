"""Where a study's files go: a folder or a URI, written whole, with the mode the user's umask gives."""

import os

import pytest

from ablate.io import atomic_write_text, umask
from ablate.results.storage import Storage, is_uri, join


@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o002, 0o664), (0o027, 0o640), (0o077, 0o600)])
def test_an_atomic_write_gets_the_umasks_mode(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        assert umask() == mask
        atomic_write_text(tmp_path / "study.json", "{}")
    finally:
        os.umask(old)
    assert (tmp_path / "study.json").stat().st_mode & 0o777 == mode


def test_join_keeps_a_uris_query_at_the_end():
    assert join("s3://bucket/prefix?region=eu-west-1", "lion") == "s3://bucket/prefix/lion?region=eu-west-1"
    assert join("s3://bucket/prefix/", "lion") == "s3://bucket/prefix/lion"
    assert join("results", "lion") == os.path.join("results", "lion")
    assert is_uri("file:///tmp/x") and not is_uri("/tmp/x")


def test_a_file_uri_and_a_path_name_the_same_folder(tmp_path):
    by_uri = Storage(f"file://{tmp_path}").child("lion")
    by_path = Storage(str(tmp_path)).child("lion")
    assert by_uri.location == f"file://{tmp_path}/lion" and by_path.location == str(tmp_path / "lion")
    by_uri.write_text("study.json", '{"name": "lion"}')
    assert by_path.read_text("study.json") == '{"name": "lion"}'
    assert by_path.is_file("study.json") and by_uri.is_dir() and not by_uri.exists("trials.parquet")
    assert sorted(p.name for p in (tmp_path / "lion").iterdir()) == ["study.json"]  # no temporary left
    by_uri.delete_dir()
    assert not (tmp_path / "lion").exists()


def test_a_relative_path_is_made_absolute_and_a_uri_is_kept(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Storage("results").location == str(tmp_path / "results")
    assert Storage("s3://bucket/prefix").location == "s3://bucket/prefix"  # not <cwd>/s3:/bucket/prefix
