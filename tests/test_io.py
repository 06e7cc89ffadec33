import os

import pandas as pd
import pytest

from safety_landscape.io import atomic_folder, atomic_path, read_jsonl, write_jsonl, write_table, write_text


def test_atomic_writes_get_the_usual_file_permissions(tmp_path):
    write_text(tmp_path / "x.txt", "hello")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "x.txt").stat().st_mode & 0o777 == 0o666 & ~mask


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "data.jsonl"
    write_jsonl(target, [{"a": 1}])
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert read_jsonl(target) == [{"a": 1}]
    assert os.listdir(tmp_path) == ["data.jsonl"]


def test_atomic_folder_replaces_the_old_folder_when_the_block_succeeds(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_folder(target) as tmp:
        assert tmp == tmp_path / "model.partial" and tmp.is_dir() and not any(tmp.iterdir())
        (tmp / "new.txt").write_text("new")
    assert os.listdir(target) == ["new.txt"]
    assert os.listdir(tmp_path) == ["model"]


def test_a_failed_atomic_folder_leaves_the_old_folder_and_no_partial(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    (tmp_path / "model.partial").mkdir()  # left over by a killed job
    (tmp_path / "model.partial" / "stale.txt").write_text("stale")
    with pytest.raises(RuntimeError):
        with atomic_folder(target) as tmp:
            (tmp / "half.txt").write_text("half")
            raise RuntimeError("killed")
    assert os.listdir(target) == ["old.txt"]
    assert os.listdir(tmp_path) == ["model"]


def test_write_table_writes_csv_and_parquet_without_the_index(tmp_path):
    frame = pd.DataFrame({"a": [0.0, 0.1], "asr": [5.0, 60.0]}, index=[7, 9])
    write_table(frame, tmp_path / "t.csv", tmp_path / "t.parquet")
    write_table(frame, tmp_path / "only.csv")
    expected = frame.reset_index(drop=True)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "t.csv"), expected)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "t.parquet"), expected)
    assert sorted(os.listdir(tmp_path)) == ["only.csv", "t.csv", "t.parquet"]
