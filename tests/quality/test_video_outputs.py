"""MP4 and contact-sheet outputs: right content, and never a half-written file."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import IO

import imageio.v2 as iio
import numpy as np
import pytest
from matplotlib.figure import Figure

from causvid_perf.quality import media as video_io
from causvid_perf.quality.references import subsample_indices
from causvid_perf.quality.scores import to_uint8


def gradient_video(frames: int = 5, height: int = 48, width: int = 80) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.stack(
        [np.stack([x / width, y / height, np.full_like(x, f / frames)], axis=-1) for f in range(frames)]
    ).astype(np.float32)


def read_mp4(path: Path) -> list[np.ndarray]:
    # iterate: list(reader) would ask len(), which is inf for ffmpeg streams
    with iio.get_reader(path, format="FFMPEG") as reader:
        return [frame for frame in reader]


def test_to_uint8_round_trips_and_scales() -> None:
    as_uint8 = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    assert to_uint8(as_uint8) is as_uint8
    assert np.array_equal(to_uint8(as_uint8.astype(np.float32) / 255), as_uint8)
    half = np.full((1, 2, 2, 3), 0.5, np.float32)
    assert to_uint8(half).dtype == np.uint8 and to_uint8(half).max() == 128


def test_abs_difference() -> None:
    a = np.zeros((1, 2, 2, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = [10, 200, 255]
    diff = video_io.abs_difference(a, b)
    assert diff.dtype == np.uint8
    assert diff[0, 0, 0].tolist() == [10, 200, 255] and diff[0, 1].sum() == 0
    assert video_io.abs_difference(b, a, gain=2.0)[0, 0, 0].tolist() == [20, 255, 255]
    with pytest.raises(ValueError, match=r"\(1, 2, 2, 3\).*\(2, 2, 2, 3\)"):
        video_io.abs_difference(a, np.zeros((2, 2, 2, 3), np.uint8))


@pytest.mark.parametrize(("height", "width"), [(48, 80), (36, 52)])  # 36x52: not multiples of 16
def test_save_mp4_round_trips(tmp_path: Path, height: int, width: int) -> None:
    video = gradient_video(frames=5, height=height, width=width)
    path = video_io.save_mp4(video, tmp_path / "nested" / "dir" / "clip.mp4", fps=16)
    assert path == tmp_path / "nested" / "dir" / "clip.mp4"
    frames = read_mp4(path)
    assert len(frames) == 5
    assert frames[0].shape == (height, width, 3)
    # lossy, but close: a smooth gradient survives CRF 10 almost unchanged
    assert np.abs(frames[2].astype(int) - to_uint8(video)[2].astype(int)).mean() < 3
    assert sorted(p.name for p in path.parent.iterdir()) == ["clip.mp4"]


def test_save_mp4_pads_odd_sizes_by_one_pixel(tmp_path: Path) -> None:
    frames = read_mp4(video_io.save_mp4(gradient_video(frames=3, height=33, width=47), tmp_path / "odd.mp4"))
    assert len(frames) == 3 and frames[0].shape == (34, 48, 3)


def test_save_mp4_rejects_other_extensions(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"ending in \.mp4"):
        video_io.save_mp4(gradient_video(), tmp_path / "clip.gif")
    assert list(tmp_path.iterdir()) == []


def test_save_mp4_failure_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_get_writer = iio.get_writer

    def writer_that_breaks_on_second_frame(*args: object, **kwargs: object) -> object:
        writer = real_get_writer(*args, **kwargs)  # real ffmpeg: a partial temp file really exists
        real_append = writer.append_data
        calls = []

        def append_data(frame: np.ndarray) -> None:
            calls.append(frame)
            if len(calls) == 2:
                raise RuntimeError("disk full")
            real_append(frame)

        writer.append_data = append_data
        return writer

    scratch_root = tmp_path / "scratch"
    scratch_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch_root))  # where ffmpeg's scratch file goes
    monkeypatch.setattr(video_io.iio, "get_writer", writer_that_breaks_on_second_frame)
    with pytest.raises(RuntimeError, match="disk full"):
        video_io.save_mp4(gradient_video(), tmp_path / "out" / "clip.mp4")
    assert list((tmp_path / "out").iterdir()) == []
    assert list(scratch_root.iterdir()) == []


def test_failed_rewrite_keeps_the_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    destination = tmp_path / "clip.mp4"
    destination.write_bytes(b"previous run")

    def broken_get_writer(*args: object, **kwargs: object) -> object:
        raise OSError("ffmpeg missing")

    monkeypatch.setattr(video_io.iio, "get_writer", broken_get_writer)
    with pytest.raises(OSError, match="ffmpeg missing"):
        video_io.save_mp4(gradient_video(), destination)
    assert destination.read_bytes() == b"previous run"
    assert list(tmp_path.iterdir()) == [destination]


def test_contact_sheet_png(tmp_path: Path) -> None:
    student = gradient_video(frames=12, height=32, width=48)
    teacher = student[:, ::-1].copy()
    rows = {"student": student, "teacher": teacher, "|difference|": video_io.abs_difference(student, teacher)}
    path = video_io.save_contact_sheet(rows, tmp_path / "sheets" / "sheet.png", max_frames=8)
    image = iio.imread(path)
    assert path.stat().st_size > 10_000
    # 8 columns of 2-inch cells at 100 dpi, 3 rows of 48:32 frames: wider than tall, a few hundred px high
    assert image.shape[1] == 1600
    assert 3 * 133 <= image.shape[0] <= 3 * 200
    assert sorted(p.name for p in path.parent.iterdir()) == ["sheet.png"]


def test_contact_sheet_uses_every_frame_when_few(tmp_path: Path) -> None:
    image = iio.imread(video_io.save_contact_sheet({"only": gradient_video(frames=3)}, tmp_path / "s.png"))
    assert image.shape[1] == 3 * 200  # 3 columns of 2-inch cells at 100 dpi, not max_frames


def test_contact_sheet_samples_first_and_last_frame() -> None:
    assert subsample_indices(81, 8).tolist() == [0, 11, 23, 34, 46, 57, 69, 80]
    assert subsample_indices(3, 8).tolist() == [0, 1, 2]


def test_contact_sheet_rejects_bad_rows(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="rows is empty"):
        video_io.save_contact_sheet({}, tmp_path / "s.png")
    with pytest.raises(ValueError, match="same frame count"):
        video_io.save_contact_sheet({"a": gradient_video(frames=2), "b": gradient_video(frames=3)}, tmp_path / "s.png")
    with pytest.raises(ValueError, match=r"rows\['bad'\].*channel-first"):
        video_io.save_contact_sheet({"bad": np.zeros((2, 3, 8, 8), np.uint8)}, tmp_path / "s.png")
    assert list(tmp_path.iterdir()) == []


def test_contact_sheet_failure_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def partial_savefig(self: Figure, target: IO[bytes], **kwargs: object) -> None:
        target.write(b"\x89PNG half")
        target.flush()
        raise RuntimeError("interrupted")

    monkeypatch.setattr(Figure, "savefig", partial_savefig)
    with pytest.raises(RuntimeError, match="interrupted"):
        video_io.save_contact_sheet({"a": gradient_video(frames=2)}, tmp_path / "sheet.png")
    assert list(tmp_path.iterdir()) == []


def test_contact_sheet_leaves_the_global_backend_alone(tmp_path: Path) -> None:
    import matplotlib

    before = matplotlib.get_backend()
    video_io.save_contact_sheet({"a": gradient_video(frames=2)}, tmp_path / "s.png")
    assert matplotlib.get_backend() == before
