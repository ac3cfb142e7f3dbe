"""The video activation check (vision.liveness): actions, one face, identity, replays.

Synthetic clips (no shared data needed) are made from the committed fixture photos: a
still photo panned, zoomed, rotated and tilted in front of the camera, two photos side by
side, one photo cut to another, a screen showing a photo. The genuine clips of the shared
set say what real footage measures; what each one shows, measured here at 10 fps:

* ``blink_frontal_selfie.mp4`` (14 s, still frontal selfie): six blinks starting at 0.43,
  1.73, 3.53, 4.70, 9.31 and 10.02 s (eyes at 0.41-0.51 of open); the two long closures
  (5.8-8.1 s, 11.0-13.7 s) are not blinks; no turn (|yaw| < 7 degrees), no open mouth,
  no nod.
* ``orlando_bloom_head_turn.avi`` (5.6 s, interview): starts turned ~55 degrees to his
  left and stays 22-45 degrees left until 4.8 s (not a turn: it never came from frontal),
  then turns through frontal (4.9 s) to 50-60 degrees right: one ``turn_right`` at
  5.0-5.5 s (48 degrees after the 3-frame median).
  No blink measurable (eyes only near-frontal for 0.2 s). Bystanders behind him are
  0.48-0.58 of his face width at most: below the "second person" bar, so one face.
* ``hamilton_clip_lin-manuel-miranda.mp4`` (9.2 s, stage footage): Miranda small (0-0.6 s),
  a profile close-up HOG cannot see (0.7-2.7 s), a medium shot where he turns right twice
  (3.7-4.6 s, up to 41 degrees, and 6.7-7.0 s, 32 degrees) while singing behind a
  microphone (no blink measurable, mouth hidden), then the audience (7.5-8.2 s: another
  face) -> ``face.changed``. He matches his reference photo.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from tests.conftest import FIXTURES, SHARED_DATA
from tests.vision.test_video import encode_clip
from vision import face, layout, liveness
from vision.io import load_image
from vision.liveness import (
    ACTIONS,
    ActionEvidence,
    LivenessResult,
    analyse_actions,
    check_liveness,
)
from vision.video import Video, decode_video

pytestmark = pytest.mark.slow
Image = npt.NDArray[np.uint8]
SELFIES = FIXTURES / "selfies"
VIDEOS = SHARED_DATA / "faces" / "videos"
PEOPLE = SHARED_DATA / "faces" / "people"


# --- synthetic clips -----------------------------------------------------------------------


@cache
def face_photo(name: str) -> Image:
    """The fixture selfie cropped around its largest face (a printed photo of a person)."""
    image = load_image(SELFIES / name).pixels
    box = face.detect_faces(image)[0]
    m = box.width
    return np.ascontiguousarray(
        image[max(0, box.top - m) : box.bottom + m, max(0, box.left - m) : box.right + m]
    )


@cache
def card_portrait(name: str) -> Image:
    """The portrait area of a committed scanned card (fixtures/selfies/*_idfront.jpg)."""
    card = load_image(SELFIES / name).pixels
    x0, y0, x1, y1 = layout.PORTRAIT_PHOTO.to_pixels(card.shape[1], card.shape[0])
    return np.ascontiguousarray(card[y0:y1, x0:x1])


def background(w: int, h: int, t: float) -> Image:
    rng = np.random.default_rng(3)
    base = rng.integers(60, 200, (h // 40 + 2, w // 40 + 2, 3), dtype=np.uint8)
    big = cv2.resize(base, (w + 80, h + 80), interpolation=cv2.INTER_CUBIC)
    dx = round(10 * math.sin(t))
    return np.ascontiguousarray(big[40 : 40 + h, 40 + dx : 40 + dx + w])


def held_photo(
    photos: Sequence[Image],
    t: float,
    *,
    size: tuple[int, int] = (640, 480),
    period: float = 4.0,
    height: float = 0.55,
    tilt: float = 0.00025,
) -> Image:
    """One frame of printed photos held in front of a camera at time ``t``: panned,
    zoomed, rotated and tilted (a perspective turn about the vertical axis, and about the
    horizontal one when ``tilt`` is larger than the default)."""
    w, h = size
    frame = background(w, h, t)
    for k, photo in enumerate(photos):
        ph, pw = photo.shape[:2]
        s = height * h / ph * (1 + 0.15 * math.sin(2 * math.pi * t / period)) / len(photos) ** 0.5
        angle = 6 * math.sin(2 * math.pi * t / 3.0)
        cx = w * (k + 1) / (len(photos) + 1) + 40 * math.sin(2 * math.pi * t / 2.5)
        cy = h / 2 + 20 * math.cos(2 * math.pi * t / 3.5)
        m = cv2.getRotationMatrix2D((pw / 2, ph / 2), angle, s)
        m[0, 2] += cx - pw / 2
        m[1, 2] += cy - ph / 2
        centre = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]], np.float64)
        pitch = (tilt - 0.00025) * math.cos(math.pi * t)
        turn = np.array([[1, 0, 0], [0, 1, 0], [tilt * math.sin(math.pi * t), pitch, 1]])
        hom = np.linalg.inv(centre) @ turn @ centre @ np.vstack([m, [0, 0, 1]])
        warped = cv2.warpPerspective(photo, hom, (w, h))
        mask = cv2.warpPerspective(np.full((ph, pw), 255, np.uint8), hom, (w, h))
        frame = np.where(mask[..., None] > 0, warped, frame)
    return np.ascontiguousarray(frame)


def on_screen(frame: Image, k: int, *, flicker: float = 0.03) -> Image:
    """``frame`` shown on a screen and filmed: RGB stripe grid, moire bands, a backlight
    that alternates frame to frame, a dark bezel around it."""
    h, w = frame.shape[:2]
    small = cv2.resize(frame, (w // 2, h // 2), interpolation=cv2.INTER_AREA).astype(np.float32)
    big = np.repeat(np.repeat(small, 3, axis=0), 3, axis=1)
    grid = np.full((3, 3, 3), 0.35, np.float32)
    for c in range(3):
        grid[:, 2 - c, c] = 1.0
    grid[2] *= 0.5
    grid /= grid.mean(axis=(0, 1), keepdims=True)
    big *= np.tile(grid, (h // 2, w // 2, 1))
    ys, xs = np.mgrid[0 : big.shape[0], 0 : big.shape[1]].astype(np.float32)
    phase = (xs * math.cos(0.7) + ys * math.sin(0.7) + 5 * np.sin(ys / 120)) * (math.pi / 9)
    big *= (1 + 0.1 * np.sin(phase))[..., None]
    big *= 1 + (flicker if k % 2 else -flicker)
    shot = cv2.resize(np.clip(big, 0, 255).astype(np.uint8), (w * 4 // 5, h * 4 // 5))
    out = np.full((h, w, 3), 20, np.uint8)
    y0, x0 = (h - shot.shape[0]) // 2, (w - shot.shape[1]) // 2
    out[y0 : y0 + shot.shape[0], x0 : x0 + shot.shape[1]] = shot
    return out


def clip(frames: list[Image], fps: float, tmp: Path) -> Video:
    return decode_video(encode_clip(frames, fps, tmp))


FPS = 15.0


def photo_frames(*names: str, seconds: float = 4.0) -> list[Image]:
    photos = [face_photo(n) for n in names]
    return [held_photo(photos, k / FPS) for k in range(round(seconds * FPS))]


def reasons_of(result: LivenessResult) -> set[str]:
    return set(result.reasons)


# --- synthetic: replays, faces -------------------------------------------------------------


def test_still_photo_moved_in_front_of_the_camera_is_a_replay(tmp_path: Path) -> None:
    video = clip(photo_frames("selfie000_no_card.jpg"), FPS, tmp_path)
    result = check_liveness(video, ["blink_twice", "turn_left"])
    assert not result.passed
    assert reasons_of(result) == {"liveness.challenge_failed", "liveness.replay_suspected"}
    signals = result.replay_signals
    assert signals["still_photo"] == 1.0
    assert signals["blinks"] == 0.0
    assert signals["nonrigid"] < liveness.NONRIGID_MIN  # measured 0.002
    assert signals["screen"] == 0.0
    assert [a.action for a in result.actions] == ["blink_twice", "turn_left"]
    assert not any(a.seen for a in result.actions)
    # Degrees: a tilted photo does not turn (measured 11, the perspective of the tilt).
    assert result.actions[1].measured < liveness.TURN_MIN_DEG
    assert result.faces_per_frame_max == 1
    assert result.frames_analysed == len(video.frames) == 40
    assert result.face_match is None
    # Nothing at all happens on a photo, however it is moved.
    assert analyse_actions(video) == ()


def test_photo_matches_its_persons_card_portrait_but_not_anothers(tmp_path: Path) -> None:
    """Identity works on a photo clip too (live face = Joe_Biden/2, card = Joe_Biden/1)."""
    video = clip(photo_frames("selfie000_no_card.jpg", seconds=3.0), FPS, tmp_path)
    own = check_liveness(
        video, ["nod"], reference_portrait=card_portrait("selfie000_no_card_idfront.jpg")
    )
    assert own.face_match is not None
    assert own.face_match.verdict in ("match", "gray")
    assert "face.mismatch" not in own.reasons
    ref = face.largest_face(card_portrait("selfie001_no_card_idfront.jpg"))  # Kit_Harington
    assert ref is not None
    other = check_liveness(video, ["nod"], reference_encoding=ref.encoding)
    assert other.face_match is not None
    assert other.face_match.verdict == "no_match"
    assert "face.mismatch" in other.reasons
    assert {"liveness.challenge_failed", "liveness.replay_suspected"} <= reasons_of(other)


def test_id_card_held_up_and_tilted_is_a_replay(tmp_path: Path) -> None:
    """The scanned card itself (its portrait ~55 px wide), tilted hard about both axes
    and blurred: no action however it is turned, and it deforms like the flat thing it
    is (measured 0.009)."""
    card = load_image(SELFIES / "selfie000_no_card_idfront.jpg").pixels
    frames = [
        cv2.GaussianBlur(held_photo([card], k / FPS, height=0.5, tilt=0.0015), (0, 0), 1.5)
        for k in range(round(4 * FPS))
    ]
    video = clip(frames, FPS, tmp_path)
    result = check_liveness(video, ["nod", "turn_left", "open_mouth"])
    assert result.reasons == ("liveness.challenge_failed", "liveness.replay_suspected")
    assert result.replay_signals["still_photo"] == 1.0
    assert analyse_actions(video) == ()


def test_no_face(tmp_path: Path) -> None:
    frames = [background(320, 240, k / FPS) for k in range(round(2.5 * FPS))]
    result = check_liveness(
        clip(frames, FPS, tmp_path),
        ["open_mouth"],
        reference_portrait=card_portrait("selfie000_no_card_idfront.jpg"),
    )
    assert result.reasons == ("liveness.challenge_failed", "face.not_found")
    assert result.faces_per_frame_max == 0
    assert result.face_match is None
    assert result.actions == (ActionEvidence("open_mouth", False, None, None, 0.0),)
    assert math.isnan(result.replay_signals["nonrigid"])


def test_two_people(tmp_path: Path) -> None:
    frames = photo_frames("selfie000_no_card.jpg", "selfie001_no_card.jpg", seconds=2.5)
    result = check_liveness(clip(frames, FPS, tmp_path), ["blink_twice"])
    assert "face.multiple" in result.reasons
    assert result.faces_per_frame_max == 2


def test_face_swapped_mid_clip(tmp_path: Path) -> None:
    frames = photo_frames("selfie000_no_card.jpg", seconds=2.0)
    frames += photo_frames("selfie001_no_card.jpg", seconds=2.0)
    result = check_liveness(clip(frames, FPS, tmp_path), ["blink_twice"])
    assert "face.changed" in result.reasons
    assert result.faces_per_frame_max == 1


def test_photo_on_a_flickering_screen(tmp_path: Path) -> None:
    frames = [on_screen(f, k) for k, f in enumerate(photo_frames("selfie000_no_card.jpg"))]
    result = check_liveness(clip(frames, FPS, tmp_path), ["turn_right"])
    # The grid and the shrinking leave HOG nothing to find; the flicker is frame-wide.
    assert result.reasons == (
        "liveness.challenge_failed",
        "liveness.replay_suspected",
        "face.not_found",
    )
    assert result.replay_signals["screen"] == 1.0
    assert result.replay_signals["flicker"] > liveness.FLICKER_MAX  # measured ~0.045


def test_challenge_validation(tmp_path: Path) -> None:
    video = clip(photo_frames("selfie000_no_card.jpg", seconds=1.5), FPS, tmp_path)
    with pytest.raises(ValueError, match="unknown challenge"):
        check_liveness(video, ["smile"])
    with pytest.raises(ValueError, match="empty"):
        check_liveness(video, [])


# --- order matching (no models) -------------------------------------------------------------


def _ev(action: str, t: float) -> ActionEvidence:
    return ActionEvidence(action, True, t, t + 0.3, 1.0)


@pytest.mark.parametrize(
    ("challenge", "in_order"),
    [
        (["turn_left", "blink_twice"], True),
        (["blink_twice", "turn_left"], True),  # the second blink pair comes after the turn
        (["turn_left", "turn_right", "nod"], True),
        (["turn_right", "turn_left"], False),
        (["turn_left", "turn_left"], False),
        (["open_mouth"], False),
    ],
)
def test_challenge_order(challenge: list[str], in_order: bool) -> None:
    events = [
        _ev("blink_twice", 0.5),
        _ev("turn_left", 1.5),
        _ev("blink_twice", 2.5),
        _ev("turn_right", 3.5),
        _ev("nod", 4.5),
    ]
    best = dict.fromkeys(ACTIONS, 0.0)
    actions, ok = liveness._match_challenge(events, challenge, best)
    assert ok is in_order
    assert [a.action for a in actions] == challenge
    if in_order:
        starts = [a.t_start for a in actions]
        assert starts == sorted(starts)  # type: ignore[type-var]
    if challenge == ["open_mouth"]:
        assert actions[0] == ActionEvidence("open_mouth", False, None, None, 0.0)


# --- the genuine clips ---------------------------------------------------------------------


@cache
def genuine(name: str) -> Video:
    return decode_video((VIDEOS / name).read_bytes())


def _times(events: Sequence[ActionEvidence], action: str) -> list[tuple[float, float]]:
    return [(e.t_start or 0.0, e.t_end or 0.0) for e in events if e.action == action]


@pytest.mark.shared_data
def test_blink_clip(shared_data: Path) -> None:
    video = genuine("blink_frontal_selfie.mp4")
    events = analyse_actions(video)
    assert {e.action for e in events} == {"blink_twice"}
    pairs = _times(events, "blink_twice")
    # Blinks at 0.43, 1.73, 3.53, 4.70 | long closure | 9.31, 10.02 | long closure.
    starts = [0.43, 1.73, 3.53, 9.31]
    assert [round(a, 1) for a, _ in pairs] == [round(s, 1) for s in starts]
    assert pairs[0][1] == pytest.approx(1.82, abs=0.1)

    result = check_liveness(video, ["blink_twice"])
    assert result.passed, result.reasons
    assert result.replay_signals["blinks"] == 6.0
    assert result.replay_signals["still_photo"] == 0.0
    assert result.replay_signals["screen"] == 0.0
    assert result.faces_per_frame_max == 1
    assert result.actions[0].t_start == pytest.approx(0.43, abs=0.1)

    # Asked to turn first: the blinks came, the turn never did.
    failed = check_liveness(video, ["turn_left", "blink_twice"])
    assert failed.reasons == ("liveness.challenge_failed",)
    turn, blink = failed.actions
    assert not turn.seen
    assert turn.measured < 10
    assert blink.seen


@pytest.mark.shared_data
def test_orlando_turns_right_and_matches_his_photo(shared_data: Path) -> None:
    video = genuine("orlando_bloom_head_turn.avi")
    events = analyse_actions(video)
    assert [e.action for e in events] == ["turn_right"]
    (turn,) = events
    assert turn.t_start == pytest.approx(5.0, abs=0.15)
    assert turn.t_end == pytest.approx(5.5, abs=0.15)
    assert turn.measured > 45
    # Flipped before upload: the same turn is to his left.
    assert [e.action for e in analyse_actions(video, mirrored=True)] == ["turn_left"]

    photo = load_image(PEOPLE / "Orlando_Bloom" / "1.jpg").pixels
    result = check_liveness(video, ["turn_right"], reference_portrait=photo)
    assert result.passed, result.reasons
    assert result.face_match is not None
    assert result.face_match.verdict == "match"
    assert result.faces_per_frame_max == 2  # a bystander, too small to count
    assert result.replay_signals["nonrigid"] > 2 * liveness.NONRIGID_MIN  # measured 0.064

    impostor = load_image(PEOPLE / "Lin-Manuel_Miranda" / "1.png").pixels
    wrong = check_liveness(video, ["turn_right"], reference_portrait=impostor)
    assert wrong.reasons == ("face.mismatch",)


@pytest.mark.shared_data
def test_hamilton_clip_changes_face(shared_data: Path) -> None:
    video = genuine("hamilton_clip_lin-manuel-miranda.mp4")
    photo = load_image(PEOPLE / "Lin-Manuel_Miranda" / "1.png").pixels
    result = check_liveness(video, ["turn_right"], reference_portrait=photo)
    assert result.reasons == ("face.changed",)
    assert result.face_match is not None
    assert result.face_match.verdict == "match"
    assert result.actions[0].t_start == pytest.approx(3.7, abs=0.15)
    turns = _times(analyse_actions(video), "turn_right")
    assert [(round(a, 1), round(b, 1)) for a, b in turns] == [(3.7, 4.6), (6.7, 7.0)]


@pytest.mark.shared_data
def test_live_clip_replayed_on_a_screen(shared_data: Path, tmp_path: Path) -> None:
    """A genuine clip (four blinks in these 5 s) shown on a screen and filmed: the pixel
    grid gives it away. (Here it also hides the blinks, so it looks still as well.)"""
    frames = [f.image for f in genuine("blink_frontal_selfie.mp4").frames[:50]]
    replay = clip([on_screen(f, k, flicker=0.0) for k, f in enumerate(frames)], 10.0, tmp_path)
    result = check_liveness(replay, ["blink_twice"])
    assert "liveness.replay_suspected" in result.reasons
    assert result.replay_signals["screen"] == 1.0
    assert result.replay_signals["moire"] > liveness.MOIRE_MAX  # measured ~11
    assert result.replay_signals["flicker"] < liveness.FLICKER_MAX  # no flicker here


@pytest.mark.shared_data
def test_cpu_per_five_seconds(shared_data: Path) -> None:
    """Budget: 2 CPU-seconds per 5 s clip, single thread (measured 0.8-1.0 s for the
    selfie clip, ~1.4 s for the stage clip's face-less stretches)."""
    data = (VIDEOS / "blink_frontal_selfie.mp4").read_bytes()
    photo = load_image(PEOPLE / "Orlando_Bloom" / "1.jpg").pixels
    check_liveness(genuine("orlando_bloom_head_turn.avi"), ["nod"])  # models loaded
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        start = time.process_time()
        video = decode_video(data, max_seconds=15.0)
        check_liveness(video, ["blink_twice", "turn_left"], reference_portrait=photo)
        spent = time.process_time() - start
    finally:
        cv2.setNumThreads(threads)
    assert spent / video.duration_s * 5 < 2.0, spent
