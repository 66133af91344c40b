"""save/load: npz with hierarchical keys, no pickle, atomic writes."""
import io
import os
import re
import stat
import struct
import time
import tracemalloc
import warnings
import zipfile
import zlib

import numpy as np
import pytest

import tinycnn
import tinycnn.io
from tinycnn.io import STALE_TEMP_SECONDS, CheckpointError


def test_nested_state_round_trips_with_python_values(tmp_path):
    state = {"model": {"features.conv1.weight": np.arange(6.0).reshape(2, 3)},
             "optimizer": {"state": {"0": {"momentum": np.ones(3, dtype=np.float32)}},
                           "param_groups": [{"lr": 0.1, "nesterov": True}, {"lr": 0.01, "nesterov": False}]},
             "epoch": 7, "name": "run", "best": None, "history": [], "rng": {"pos": 3}}
    path = tmp_path / "ckpt.npz"
    tinycnn.save(state, path)
    loaded = tinycnn.load(path)
    np.testing.assert_array_equal(loaded["model"]["features"]["conv1"]["weight"], state["model"]["features.conv1.weight"])
    assert loaded["optimizer"]["param_groups"] == state["optimizer"]["param_groups"]
    assert loaded["optimizer"]["state"]["0"]["momentum"].dtype == np.float32
    assert loaded["epoch"] == 7 and loaded["name"] == "run" and loaded["best"] is None and loaded["history"] == []


def test_file_uses_hierarchical_keys_and_needs_no_pickle(tmp_path):
    path = tmp_path / "s.npz"
    tinycnn.save({"features.conv1.weight": np.zeros(2)}, path)
    with np.load(path, allow_pickle=False) as archive:
        assert archive.files == ["features/conv1/weight"]


def test_failed_write_leaves_previous_file_intact(tmp_path):
    path = tmp_path / "s.npz"
    tinycnn.save({"a": np.ones(2)}, path)
    with pytest.raises(TypeError):
        tinycnn.save({"a": np.ones(2), "b": object()}, path)
    np.testing.assert_array_equal(tinycnn.load(path)["a"], np.ones(2))
    assert os.listdir(tmp_path) == ["s.npz"]


def test_load_of_a_corrupt_file_names_it(tmp_path):
    path = tmp_path / "broken.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="broken.npz"):
        tinycnn.load(path)


# ----- damaged files: one documented error naming the file ---------------------------------
def zip_of(members, compression=zipfile.ZIP_STORED):
    """The bytes of a zip holding ``name: bytes`` members as given (valid CRCs)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate names some tests want
        for name, data in members:
            archive.writestr(name, data)
    return buffer.getvalue()


def npy_bytes(array):
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=True)
    return buffer.getvalue()


def load_error(tmp_path, data, **kwargs):
    """The CheckpointError that loading ``data`` from a file gives (fails if it loads)."""
    path = tmp_path / "damaged.npz"
    path.write_bytes(data)
    with pytest.raises(CheckpointError) as error:
        tinycnn.load(path, **kwargs)
    assert str(path) in str(error.value)
    return str(error.value)


def saved_bytes(tmp_path, state):
    tinycnn.save(state, tmp_path / "good.npz")
    return (tmp_path / "good.npz").read_bytes()


def test_empty_truncated_and_crc_damaged_files_give_a_checkpoint_error(tmp_path):
    good = saved_bytes(tmp_path, {"w": np.arange(50.0), "epoch": 3})
    assert issubclass(CheckpointError, ValueError)
    assert "empty" in load_error(tmp_path, b"")
    for length in (1, 30, 100, len(good) // 2, len(good) - 1):
        load_error(tmp_path, good[:length])
    flipped = bytearray(good)
    flipped[good.index(np.arange(50.0).tobytes()) + 7] ^= 0x10  # one bit of the array data
    assert "CRC" in load_error(tmp_path, bytes(flipped))


def test_members_that_are_not_plain_npy_arrays_are_refused(tmp_path):
    assert "not a .npy" in load_error(tmp_path, zip_of([("readme.txt", b"hello")]))
    load_error(tmp_path, zip_of([("w.npy", b"\x93NUMPY\x01\x00garbage")]))
    header = npy_bytes(np.arange(4.0))
    load_error(tmp_path, zip_of([("w.npy", header.replace(b"'<f8'", b"'<f9'"))]))
    message = load_error(tmp_path, zip_of([("w.npy", header[:-4])]))  # 4 bytes short of 4 float64
    assert "promises 32 bytes" in message and "holds 28" in message
    assert "Python objects" in load_error(tmp_path, zip_of([("w.npy", npy_bytes(np.array([{}], dtype=object)))]))
    assert "twice" in load_error(tmp_path, zip_of([("a.npy", npy_bytes(1)), ("a.npy", npy_bytes(2))]))


def test_keys_that_collide_or_leave_gaps_are_refused_on_load(tmp_path):
    one = npy_bytes(1)
    assert "'a'" in load_error(tmp_path, zip_of([("a.npy", one), ("a/b.npy", one)]))
    assert "'a'" in load_error(tmp_path, zip_of([("a/b.npy", one), ("a.npy", one)]))
    assert "[2]" in load_error(tmp_path, zip_of([("x/[0].npy", one), ("x/[2].npy", one)]))
    load_error(tmp_path, zip_of([("x/[0].npy", one), ("x/name.npy", one)]))
    load_error(tmp_path, zip_of([("x/<none>.npy", npy_bytes(np.zeros(0))), ("x/b.npy", one)]))
    load_error(tmp_path, zip_of([("[0].npy", one)]))
    load_error(tmp_path, zip_of([("a//b.npy", one)]))


def test_save_refuses_keys_that_collide_before_writing(tmp_path):
    path = tmp_path / "s.npz"
    for state, first, second in (({"a.b": 1, "a": {"b": 2}}, "['a.b']", "['a']['b']"),
                                 ({"a": 1, "a.b": 2}, "['a']", "['a.b']"),
                                 ({"a": None, "a.b": 2}, "['a']", "['a.b']"),
                                 ({"a": {}, "a.b": 2}, "['a']", "['a.b']"),
                                 ({"a": [1], "a.b": 2}, "['a']", "['a.b']"),
                                 ({1: 2, "1": 3}, "[1]", "['1']")):
        with pytest.raises(ValueError) as error:
            tinycnn.save(state, path)
        assert first in str(error.value) and second in str(error.value)
        assert os.listdir(tmp_path) == []
    with pytest.raises(ValueError, match="'x.\\[0\\]'"):
        tinycnn.save({"x.[0]": 1}, path)
    with pytest.raises(ValueError, match=r"\['s'\] ends with a NUL"):  # np.asarray("a\0") is "a"
        tinycnn.save({"s": "a\0"}, path)
    assert os.listdir(tmp_path) == []


def test_dotted_names_and_nested_dicts_still_merge_and_odd_names_round_trip(tmp_path):
    path = tmp_path / "s.npz"
    tinycnn.save({"fc.weight": np.ones(2), "fc": {"bias": np.zeros(2)}, "file": 1, "allow_pickle": "no"}, path)
    loaded = tinycnn.load(path)
    assert sorted(loaded["fc"]) == ["bias", "weight"]
    assert loaded["file"] == 1 and loaded["allow_pickle"] == "no"


# ----- atomic writes: temp names, stale temps, permissions, fsync -------------------------------
def test_a_save_writes_a_named_temp_file_with_the_umask_mode(tmp_path, monkeypatch):
    renamed = []
    real_replace = os.replace

    def replace(source, target):
        renamed.append((os.path.basename(source), oct(os.stat(source).st_mode & 0o777)))
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    previous = os.umask(0o022)
    try:
        tinycnn.save({"a": 1}, tmp_path / "s.npz")
        os.umask(0o027)
        tinycnn.save({"a": 1}, tmp_path / "t.npz")
    finally:
        os.umask(previous)
    assert re.fullmatch(r"\.s\.npz\.[0-9a-f]{8}\.tmp", renamed[0][0])
    assert renamed[0][1] == "0o644" and renamed[1][1] == "0o640"
    assert oct((tmp_path / "s.npz").stat().st_mode & 0o777) == "0o644"


def test_the_next_save_removes_temp_files_of_killed_saves(tmp_path):
    stale, fresh = tmp_path / ".s.npz.0123abcd.tmp", tmp_path / ".s.npz.89abcdef.tmp"
    other, unrelated = tmp_path / ".t.npz.0123abcd.tmp", tmp_path / ".s.npz.notmine.tmp"
    for temp in (stale, fresh, other, unrelated):
        temp.write_bytes(b"half a checkpoint")
    old = time.time() - 2 * STALE_TEMP_SECONDS
    for temp in (stale, other, unrelated):
        os.utime(temp, (old, old))
    tinycnn.save({"a": 1}, tmp_path / "s.npz")
    # only the stale temp of this target goes: a fresh one may belong to a save still running
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([fresh.name, other.name, unrelated.name, "s.npz"])


def test_the_folder_is_fsynced_after_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append(
        "folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"), real_fsync(fd)))
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("rename"), real_replace(a, b)))
    tinycnn.save({"a": 1}, tmp_path / "s.npz")
    assert events == ["file", "rename", "folder"]


# ----- size limits: nothing is decompressed beyond what the headers allow ----------------------
def set_uncompressed_size(data, size, crc=None):
    """Rewrite the uncompressed size (and CRC) of the single member in both zip headers."""
    data = bytearray(data)
    for signature, size_at, crc_at in ((b"PK\x03\x04", 22, 14), (b"PK\x01\x02", 24, 16)):
        start = data.index(signature)
        data[start + size_at:start + size_at + 4] = struct.pack("<I", size)
        if crc is not None:
            data[start + crc_at:start + crc_at + 4] = struct.pack("<I", crc)
    return bytes(data)


def peak_memory_of(function):
    tracemalloc.start()
    try:
        function()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_decompression_bomb_is_refused_from_its_headers(tmp_path):
    bomb = zip_of([("w.npy", npy_bytes(np.zeros(20 * 2**20, np.uint8)))], zipfile.ZIP_DEFLATED)
    assert len(bomb) < 2**20 // 4
    errors = []
    peak = peak_memory_of(lambda: errors.append(load_error(tmp_path, bomb, max_bytes=2**20)))
    assert "'w.npy'" in errors[0] and str(20 * 2**20 + 128) in errors[0] and "max_bytes=1048576" in errors[0]
    assert peak < 2**20  # refused before decompressing: far less than the 20 MiB it promises


def test_the_module_limit_applies_and_a_larger_max_bytes_loads(tmp_path, monkeypatch):
    path = tmp_path / "s.npz"
    tinycnn.save({"w": np.zeros(1000)}, path)
    monkeypatch.setattr(tinycnn.io, "MAX_LOAD_BYTES", 1000)
    with pytest.raises(CheckpointError, match="'w.npy' declares 8128 bytes"):
        tinycnn.load(path)
    np.testing.assert_array_equal(tinycnn.load(path, max_bytes=8128)["w"], np.zeros(1000))
    with pytest.raises(ValueError, match="max_bytes"):
        tinycnn.load(path, max_bytes=-1)


def test_reading_stops_at_the_declared_size_when_the_zip_header_lies(tmp_path):
    array = np.arange(10.0)
    header = npy_bytes(array)
    hidden = header + bytes(20 * 2**20)  # 20 MiB more in the deflated stream than the headers declare
    lying = set_uncompressed_size(zip_of([("w.npy", hidden)], zipfile.ZIP_DEFLATED), len(header),
                                  zlib.crc32(header))
    path = tmp_path / "lying.npz"
    path.write_bytes(lying)
    loaded = []
    peak = peak_memory_of(lambda: loaded.append(tinycnn.load(path)))
    np.testing.assert_array_equal(loaded[0]["w"], array)
    assert peak < 4 * 2**20  # the 20 MiB behind the declared end were never decompressed
    # a header that declares less than the .npy header promises is damage, not a shorter array
    short = set_uncompressed_size(zip_of([("w.npy", header)]), len(header) - 8, zlib.crc32(header[:-8]))
    assert "promises 80 bytes" in load_error(tmp_path, short)


def test_a_central_directory_that_hides_members_is_refused(tmp_path):
    good = bytearray(saved_bytes(tmp_path, {"a": 1, "b": 2, "c": 3}))
    first_entry = good.index(b"PK\x01\x02")
    good[first_entry + 32:first_entry + 34] = struct.pack("<H", 200)  # a comment swallowing the next entries
    assert "not listed" in load_error(tmp_path, bytes(good))


class Unseekable(io.RawIOBase):
    """A write-only stream that cannot seek, like a pipe: zipfile then writes data descriptors."""

    def __init__(self):
        self.chunks = []

    def writable(self):
        return True

    def write(self, data):
        self.chunks.append(bytes(data))
        return len(data)


def test_an_npz_written_to_a_stream_that_cannot_seek_loads(tmp_path):
    stream = Unseekable()
    np.savez(stream, w=np.arange(3.0), n=np.int64(5))
    path = tmp_path / "piped.npz"
    path.write_bytes(b"".join(stream.chunks))
    with zipfile.ZipFile(path) as archive:
        assert all(info.flag_bits & 0x08 for info in archive.infolist())
    loaded = tinycnn.load(path)
    np.testing.assert_array_equal(loaded["w"], np.arange(3.0))
    assert loaded["n"] == 5
