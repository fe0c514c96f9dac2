"""ZeroSpeech item files: what read_items accepts, what it refuses (naming file and line), round trips."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.data import ItemFileError, read_items, write_items

HEADER = "#file onset offset #phone prev-phone next-phone speaker\n"


def write(tmp_path, text: str):
    path = tmp_path / "x.item"
    path.write_text(text)
    return path


def test_reads_columns_times_and_original_text(tmp_path):
    path = write(tmp_path, HEADER + "f1 0.015 0.0750 a SIL b s1\nf2 1.2 1.3 b a c s2\n")
    table = read_items(path)
    assert list(table.columns[:7]) == [
        "file",
        "onset",
        "offset",
        "phone",
        "prev",
        "next",
        "speaker",
    ]
    assert table["file"].tolist() == ["f1", "f2"]
    assert table["onset"].tolist() == [0.015, 1.2]
    assert table["offset_text"].tolist() == ["0.0750", "1.3"]
    assert table["line"].tolist() == [2, 3]
    assert table["speaker"].tolist() == ["s1", "s2"]


def test_extra_columns_are_kept(tmp_path):
    path = write(tmp_path, HEADER.rstrip("\n") + " gender\nf1 0 1 a b c s1 F\n")
    assert read_items(path)["gender"].tolist() == ["F"]


def test_blank_lines_are_skipped(tmp_path):
    assert len(read_items(write(tmp_path, HEADER + "\nf1 0 1 a b c s1\n\n"))) == 1


@pytest.mark.parametrize(
    ("body", "line", "words"),
    [
        ("f1 0 1 a b c\n", 2, "expected 7 fields"),
        ("f1 0 1 a b c s1\nf1 0 1 a b c s1 extra\n", 3, "expected 7 fields"),
        ("f1 0.5 0.5 a b c s1\n", 2, "not before offset"),
        ("f1 0.6 0.5 a b c s1\n", 2, "not before offset"),
        ("f1 zero 0.5 a b c s1\n", 2, "not a number"),
        ("f1 0 nan a b c s1\n", 2, "not a finite number"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, body, line, words):
    path = write(tmp_path, HEADER + body)
    with pytest.raises(ItemFileError, match=words) as info:
        read_items(path)
    assert f"{path}:{line}:" in str(info.value)
    assert info.value.line == line


def test_missing_header_column_is_named(tmp_path):
    path = write(tmp_path, "#file onset offset #phone prev-phone next-phone\nf1 0 1 a b c\n")
    with pytest.raises(ItemFileError, match=rf"{path}:1: header lacks column\(s\) speaker"):
        read_items(path)


def test_empty_file_and_missing_file(tmp_path):
    with pytest.raises(ItemFileError, match="empty file"):
        read_items(write(tmp_path, ""))
    with pytest.raises(FileNotFoundError):
        read_items(tmp_path / "absent.item")


def test_write_refuses_whitespace_in_labels(tmp_path):
    table = pd.DataFrame(
        {"file": ["f"], "onset": [0.0], "offset": [1.0], "phone": ["a b"], "prev": ["x"]}
        | {"next": ["y"], "speaker": ["s"]}
    )
    with pytest.raises(ValueError, match="column phone"):
        write_items(tmp_path / "out.item", table)
    assert not (tmp_path / "out.item").exists()


labels = st.text(alphabet="abcdefghSIL_0123", min_size=1, max_size=4)
times = st.decimals(min_value=0, max_value=100, places=4, allow_nan=False, allow_infinity=False)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(labels, times, times, labels, labels, labels, labels), min_size=1, max_size=8
    )
)
def test_round_trip_keeps_text_and_values(tmp_path_factory, rows):
    rows = [(f, str(min(a, b)), str(max(a, b) + 1), p, q, r, s) for f, a, b, p, q, r, s in rows]
    path = tmp_path_factory.mktemp("rt") / "in.item"
    path.write_text(HEADER + "".join(" ".join(r) + "\n" for r in rows))
    table = read_items(path)
    out = write_items(path.with_name("out.item"), table)
    assert out.read_text() == path.read_text()
    again = read_items(out)
    pd.testing.assert_frame_equal(again.drop(columns="line"), table.drop(columns="line"))


def test_write_without_text_columns_uses_float_repr(tmp_path):
    table = pd.DataFrame(
        {"file": ["f"], "onset": [0.1], "offset": [0.25], "phone": ["a"], "prev": ["x"]}
        | {"next": ["y"], "speaker": ["s"]}
    )
    back = read_items(write_items(tmp_path / "o.item", table))
    assert back["onset"].tolist() == [0.1] and back["offset_text"].tolist() == ["0.25"]


def test_numpy_columns_are_the_table_without_pandas(tmp_path):
    """read_item_columns gives read_items's table column for column (the engine reads this form)."""
    from training.data.items import ItemColumns, read_item_columns

    path = tmp_path / "x.item"
    path.write_text(
        "#file onset offset #phone prev-phone next-phone speaker extra\n"
        "a 0.015 0.045 p SIL q s1 e1\n\nb 0.5 1.25 q p SIL s2 e2\n"
    )
    table, columns = read_items(path), read_item_columns(path)
    pd.testing.assert_frame_equal(columns.to_frame(), table)
    assert columns.path == table.attrs["path"] and len(columns) == 2
    assert columns["line"].tolist() == [2, 4] and columns["onset"].dtype == np.float64
    again = ItemColumns.from_frame(table)
    assert again.names == columns.names and again.path == columns.path
    assert all(np.array_equal(again[c].astype(str), columns[c].astype(str)) for c in columns)
    assert columns.take(np.array([1]))["file"].tolist() == ["b"]
