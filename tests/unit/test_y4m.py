"""services.synth.y4m: a video as YUV4MPEG2 for Chromium's fake camera."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from services.synth.y4m import camera_frames, write_y4m


def _clip(path: Path, size: tuple[int, int], frames: int, fps: float = 10.0) -> Path:
    """Frames of flat colours: frame i is grey level 12 * i (left half), white (right)."""
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    for i in range(frames):
        img = np.full((h, w, 3), 12 * i, dtype=np.uint8)
        img[:, w // 2 :] = 255
        writer.write(img)
    writer.release()
    return path


def _parse(path: Path) -> tuple[dict[str, str], list[bytes]]:
    data = path.read_bytes()
    header, _, rest = data.partition(b"\n")
    tags = header.decode().split(" ")
    assert tags[0] == "YUV4MPEG2"
    fields = {t[0]: t[1:] for t in tags[1:]}
    chunks = rest.split(b"FRAME\n")
    assert chunks[0] == b""
    return fields, chunks[1:]


def test_landscape_clip_becomes_640x480_i420_at_its_frame_rate(tmp_path: Path) -> None:
    src = _clip(tmp_path / "a.avi", (320, 240), frames=10)
    clip = write_y4m(src, tmp_path / "a.y4m")
    fields, frames = _parse(clip.path)
    assert (fields["W"], fields["H"], fields["F"], fields["C"]) == ("640", "480", "10:1", "420jpeg")
    assert (clip.width, clip.height, clip.frames) == (640, 480, 10)
    assert clip.seconds == pytest.approx(1.0)
    assert len(frames) == 10
    assert all(len(f) == 640 * 480 * 3 // 2 for f in frames)
    # The luma plane follows the source: frame 5 is grey 60 on the left, white right.
    y = np.frombuffer(frames[5][: 640 * 480], dtype=np.uint8).reshape(480, 640)
    assert abs(int(y[240, 100]) - 60) <= 12
    assert y[240, 600] >= 230


def test_retiming_cutting_cropping_and_portrait_padding(tmp_path: Path) -> None:
    src = _clip(tmp_path / "b.avi", (240, 320), frames=20)  # portrait, 2 s at 10 fps
    clip = write_y4m(src, tmp_path / "b.y4m", fps=5, start_s=1.0)
    fields, frames = _parse(clip.path)
    assert (fields["W"], fields["H"], fields["F"]) == ("480", "640", "5:1")
    assert len(frames) == clip.frames == 5  # the second second, at 5 fps
    first = np.frombuffer(frames[0][: 480 * 640], dtype=np.uint8).reshape(640, 480)
    assert abs(int(first[320, 100]) - 120) <= 12  # source frame 10
    # The left half only, fitted into 640x480 with black bars at the sides.
    shown, fps = camera_frames(src, crop=(0.0, 0.0, 0.5, 1.0))
    assert fps == pytest.approx(10.0)
    assert shown[0].shape == (640, 480, 3)  # still portrait (120x320): 480x640
    assert shown[3][320, 5].max() <= 10  # the bar
    assert abs(int(shown[3][320, 240].mean()) - 36) <= 12  # the crop: no white half
    with pytest.raises(ValueError, match="crop"):
        camera_frames(src, crop=(0.5, 0.0, 0.6, 1.0))
