"""Video liveness for SIM activation (R7): did the one person in the clip perform the
random challenge, in order, is it the person of the verified ID, and is it live?

Pipeline (all dlib via ``face_recognition``'s models; nothing else is loaded):

1. **Track one face** over the sampled frames of a :class:`~vision.video.Video`. A full
   HOG pass runs every :data:`DETECT_EVERY` frames on a copy scaled so that the tracked
   face is about :data:`FULL_PASS_FACE_PX` wide (small enough to be cheap, large enough
   that a second face half as wide is still found). In between, HOG runs only on a crop
   around the last box, scaled so that the face is :data:`ROI_FACE_PX` wide (~3 ms),
   and the 68-point shape predictor on the box found (~2 ms). Where HOG misses the face
   (a head turned past ~60 degrees, motion blur), the track keeps its last box for the
   crop search for at most :data:`MAX_TRACK_GAP` frames; nothing is measured there. A
   jump of the box, another face in its place or a re-acquisition starts a new track
   *segment*.
2. **Measure** per frame from the 68 landmarks, in the face's own affine frame (spanned
   by the outer eye corners and the mouth corners): eye opening (blinks), head yaw and
   pitch from where the nose tip lies; plus inner-mouth opening over mouth width (open
   mouth). The affine coordinates do not change under any affine warp of a flat
   picture (and little under a perspective one), so moving, zooming or tilting a photo
   cannot fake a blink, a head turn or a nod.
3. **Actions** are runs of frames past a threshold (see the constants below) and the
   challenge is matched in order by their start times.
4. **Identity**: the sharpest near-frontal frames (eyes open) are encoded: the best of
   each track segment and of each third of the clip, each compared with the best frame
   overall (``face.changed`` on a no-match), and the :data:`MATCH_FRAMES` best of the
   main segment compared with the ID portrait with the ``selfie_vs_portrait``
   thresholds of :mod:`vision.face`; the median comparison decides.
5. **Replay signals**: a still photo neither blinks nor deforms (landmarks follow one
   homography of a reference frame); a screen adds a periodic pixel grid or moire
   (spectral peak on the face) and often flicker (frame brightness oscillating).

Reason codes: ``liveness.challenge_failed``, ``liveness.replay_suspected``,
``face.not_found``, ``face.multiple``, ``face.changed``, ``face.mismatch``,
``face.uncertain``, ``face.portrait_not_found`` (no face in the reference portrait).

Direction convention: ``turn_left`` is a turn to the *subject's* left. A browser's
``MediaRecorder`` stores the camera's unmirrored picture (the mirrored preview is only
CSS), where the subject's left is the image's right; pass ``mirrored=True`` for a clip
that was flipped before upload.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Final

import cv2
import numpy as np
import numpy.typing as npt

from vision import face
from vision.face import FaceBox, FaceMatch
from vision.timing import StageTimer
from vision.video import Video

Image = npt.NDArray[np.uint8]
Points = npt.NDArray[np.float64]  # (68, 2) landmark coordinates in frame pixels

ACTIONS: Final = ("blink_twice", "turn_left", "turn_right", "open_mouth", "nod")

# --- Tracking ---------------------------------------------------------------------------
# A full-frame HOG pass every this many analysed frames (0.5 s at 10 fps): finds second
# faces and re-acquires a lost track. In between, HOG runs on a crop around the face.
DETECT_EVERY: Final = 5
# Full passes scale the frame so that the tracked face is this wide: HOG's window is
# 80 px, so a second face 0.5x as wide is still found, at a quarter of full-size cost.
FULL_PASS_FACE_PX: Final = 160
# Never upscale a frame more than this for a full pass (a 320x240 clip's 90 px face).
MAX_UPSCALE: Final = 2.0
# Crop pass: the face is scaled to this width inside a crop of ROI_SPAN x its box.
ROI_FACE_PX: Final = 100
ROI_SPAN: Final = 2.0
# HOG may miss a frame (a head turned past ~60 degrees, motion blur): the track keeps its
# last box for the crop search for at most this many frames, then is lost.
MAX_TRACK_GAP: Final = 6
# A detection whose box overlaps the track by less than this IoU is another face.
MIN_TRACK_IOU: Final = 0.3
# A second face at least this wide relative to the tracked one is a second person
# (bystanders far behind a selfie are 5-10x smaller; those behind the interviewee of the
# head-turn clip measure 0.48-0.58, a second person posing 0.7-1.0), when seen in at
# least MULTIPLE_MIN_PASSES full passes (one HOG false positive is not a person).
COMPARABLE_WIDTH: Final = 0.62
MULTIPLE_MIN_PASSES: Final = 2
# Most analysed frames must show the face.
MIN_FACE_FRACTION: Final = 0.5

# --- Measures ---------------------------------------------------------------------------
# Yaw from the nose tip's position between the outer eye corners: offset / half their
# distance = depth ratio x tan(yaw). The nose tip stands ~0.7 half-eye-widths in front
# of the eye corners (generic head model); degrees are approximate, thresholds were set
# on the same scale.
YAW_DEPTH: Final = 0.7
# Pitch from the nose tip's position between eye line and mouth line: it moves by about
# 0.4 of the eye-mouth distance per radian; relative to the clip's neutral position.
PITCH_DEPTH: Final = 0.4

# Landmarks of a face narrower than this (frame pixels) are too coarse for eyes and lips.
MIN_MEASURE_FACE_PX: Final = 64
# Yaw and pitch of the nose tip are meaningless past this (landmarks of a profile).
MEASURE_MAX_YAW: Final = 60.0
# Frames further apart than this (no measure in between) split a run.
MAX_RUN_GAP_S: Final = 0.35
# A turn, nod or open mouth lasts at least this many measured frames (0.2 s at 10 fps);
# a failed landmark fit can put two frames of "yaw" next to each other.
MIN_ACTION_FRAMES: Final = 2

# --- Actions ----------------------------------------------------------------------------
# Blink: the eye opening (lids apart along the eye-mouth axis, in eye-mouth distances;
# see _measure) falls below BLINK_CLOSED of the local open-eye level (90th percentile
# within BLINK_LEVEL_WINDOW_S) and comes back. The blink clip: open 0.13, its six blinks
# 0.41-0.51 of open at their lowest 10 fps frame; photos moved in front of the camera
# never go below 0.74 (the landmarks' jitter).
BLINK_CLOSED: Final = 0.65
# ...and by at least this many times the landmark noise of the clip (robust std of the
# frame-to-frame changes, 4-9 % of the open level): genuine blinks drop by 12.6-15x,
# photo jitter by 6.3x at most (and never with both this and BLINK_CLOSED).
BLINK_MIN_DROP: Final = 6.0
# ...and the eyes count as open again above this (a half-open 10 fps sample between two
# quick blinks measures 0.82).
BLINK_OPEN: Final = 0.8
# The level's window, either side: the blink clip's 2.3 and 2.7 s closures still leave a
# third of it open.
BLINK_LEVEL_WINDOW_S: Final = 2.5
# Closed for longer than this is not a blink (eyes shut on purpose).
BLINK_MAX_S: Final = 1.0
# Eyes of a head turned further than this are foreshortened: no blink measured there.
BLINK_MAX_YAW: Final = 30.0
# "Blink twice": two blinks starting at most this far apart.
BLINK_PAIR_MAX_S: Final = 2.0
# Head turn: yaw past this many degrees to one side (the genuine turns peak at 32-48
# after the 3-frame median; a photo tilted hard about its vertical axis reaches ~21),
# starting from a head within TURN_REST_DEG of frontal (a clip that begins turned, like
# the Orlando clip's first 4.8 s at 22-58 degrees, shows no turn there).
TURN_MIN_DEG: Final = 25.0
TURN_REST_DEG: Final = 15.0
# Open mouth: inner-lip gap over mouth width. Closed 0-0.1; talking and singing in the
# genuine clips reach 0.28 (0.45 where a microphone covers the lips and the landmarks
# slip); a mouth opened on request ("ah") is about as high as wide.
MOUTH_OPEN_MIN: Final = 0.5
# Lips of a head turned further are foreshortened and partly hidden.
MOUTH_MAX_YAW: Final = 30.0
# Nod: pitch away from the clip's neutral by this many degrees (a blink moves the eye
# corners, worth ~6 degrees) while the head is within NOD_MAX_YAW of frontal.
NOD_MIN_DEG: Final = 15.0
NOD_MAX_YAW: Final = 25.0
# ...and back within this long.
NOD_MAX_S: Final = 2.0

# --- Identity ---------------------------------------------------------------------------
# Frames for encoding: HOG-confirmed, within this yaw and pitch, eyes open.
FRONTAL_MAX_DEG: Final = 20.0
MATCH_FRAMES: Final = 3  # best frames compared with the ID portrait (median verdict)
MATCH_MIN_GAP_S: Final = 0.5  # ...at least this far apart in time
MAX_IDENTITY_FRAMES: Final = 5  # encodings spent on "is it the same face throughout"
# Another person: a calibrated score (default use) below this against the best frame.
# Different people in the clips score 0.001-0.013; the same face 0.93-1.0 across poses,
# but only 0.54-0.69 on a blurred photo tilted 30+ degrees (under the default use's
# no-match threshold, 0.73): a face change must be beyond doubt.
FACE_CHANGED_SCORE: Final = 0.2
# The portrait area of a scanned card is small: upscale it this much when HOG misses.
PORTRAIT_SCALE: Final = 2.0

# --- Replay -----------------------------------------------------------------------------
# Still photo: no blink, and landmarks that deform no more than a flat picture does:
# the spread (90th percentile minus median over the clip) of each frame's residual from
# the best homography of a reference frame's landmarks, in eye-corner distances. Photos
# panned, zoomed, rotated and tilted into a clip (tests, fixtures/liveness' print and
# ID-portrait attacks, an ID card held up, blurred, small): 0.002-0.009 (their noise
# floor, the median, is 0.013-0.037). Genuine clips: 0.018 (blink clip, a still head
# that blinks), 0.029-0.064 (talking, turning: Hamilton, Orlando, fixtures/liveness).
NONRIGID_MIN: Final = 0.015
# ...judged on faces at least this wide (the landmarks of smaller ones are mostly
# noise), in at least this many frames.
REPLAY_MIN_FACE_PX: Final = 48
REPLAY_MIN_FRAMES: Final = 10
# Screen: prominence of the sharpest periodic peak in the spectrum of a face patch
# (median over MOIRE_FRAMES frames). Genuine clips and photo clips measure 2.3-3.9; a
# simulated screen (RGB stripe grid and moire bands, re-filmed, VP8 or MPEG-4) 6.6-11,
# or as low as genuine when the codec smooths the grid away: this catches only a
# visible grid. 5.0 keeps a margin over genuine clips and catches a low-resolution screen
# whose grid measured 6.0 (the benchmark's screen_replay_014).
MOIRE_MAX: Final = 5.0
MOIRE_FRAMES: Final = 6
MOIRE_PATCH: Final = 96  # px: the patch side (at most 0.7 of the face width)
MOIRE_MIN_FREQ: Final = 0.05  # cycles/px: below is the face's own shape
# Screen: brightness zigzag between consecutive frames, relative. Genuine clips 0.0006
# (still selfie) to 0.006 (stage lights, cuts); a 1 % frame-to-frame flicker measures
# 0.015, 3 % 0.045.
FLICKER_MAX: Final = 0.02


@cache
def _models() -> tuple[Any, Any, Any]:
    """dlib's HOG detector, 68-point shape predictor and rectangle type (face_recognition's
    copies: loaded once, through vision.face, which keeps PIL's global safe)."""
    fr = face._fr()
    import dlib

    return fr.api.face_detector, fr.api.pose_predictor_68_point, dlib.rectangle


Box = npt.NDArray[np.float64]  # x0, y0, x1, y1 in frame pixels


@dataclass(slots=True)
class _Obs:
    """What the tracker saw in one analysed frame."""

    t: float
    box: Box | None = None
    points: Points | None = None
    detected: bool = False  # HOG found the tracked face here
    segment: int = -1
    full_pass: bool = False
    faces: int = 0  # faces found by this frame's full pass
    comparable: int = 0  # other faces at least COMPARABLE_WIDTH as wide as the tracked one
    ear: float = math.nan
    mar: float = math.nan
    alpha: float = math.nan  # nose tip between the eye corners (yaw)
    beta: float = math.nan  # nose tip between eye line and mouth line (pitch)


def _box(o: _Obs) -> Box:
    assert o.box is not None
    return o.box


def _width(b: Box) -> float:
    return float(b[2] - b[0])


def _iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _hog(rgb: Image, scale: float, upsample: int = 0) -> list[Box]:
    """HOG faces of ``rgb`` scaled by ``scale``, boxes in ``rgb`` pixels, largest first."""
    detector = _models()[0]
    img = rgb
    if abs(scale - 1.0) > 1e-3:
        h, w = rgb.shape[:2]
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
        img = np.asarray(cv2.resize(rgb, size, interpolation=interp), np.uint8)
    if min(img.shape[:2]) < 40:
        return []
    dets, _, _ = detector.run(img, upsample, 0.0)
    boxes = [np.array([d.left(), d.top(), d.right(), d.bottom()], np.float64) / scale for d in dets]
    boxes.sort(key=lambda b: -_width(b))
    return boxes


def _roi_detect(rgb: Image, around: Box) -> list[Box]:
    """HOG on a crop around ``around``, scaled so that the face is ROI_FACE_PX wide."""
    h, w = rgb.shape[:2]
    bw = _width(around)
    cx, cy = (around[0] + around[2]) / 2, (around[1] + around[3]) / 2
    half = ROI_SPAN * bw / 2
    x0, y0 = max(0, int(cx - half)), max(0, int(cy - half))
    x1, y1 = min(w, int(cx + half) + 1), min(h, int(cy + half) + 1)
    if x1 - x0 < 16 or y1 - y0 < 16:
        return []
    crop = np.ascontiguousarray(rgb[y0:y1, x0:x1])
    scale = min(MAX_UPSCALE * 2, ROI_FACE_PX / max(bw, 1.0))
    offset = np.array([x0, y0, x0, y0], np.float64)
    return [b + offset for b in _hog(crop, scale)]


def _landmarks(rgb: Image, box: Box) -> Points:
    _, predictor, rectangle = _models()
    rect = rectangle(int(box[0]), int(box[1]), int(box[2]), int(box[3]))
    shape = predictor(rgb, rect)
    return np.array([(p.x, p.y) for p in shape.parts()], np.float64)


def _measure(obs: _Obs, p: Points) -> None:
    """Fill in the measures of one frame from its 68 landmarks (dlib/iBUG numbering)."""
    gap = (
        np.linalg.norm(p[61] - p[67])
        + np.linalg.norm(p[62] - p[66])
        + np.linalg.norm(p[63] - p[65])
    ) / 3
    obs.mar = float(gap / max(float(np.linalg.norm(p[64] - p[60])), 1e-6))
    # The face's own affine frame: half the outer eye-corner vector, and the vector from
    # the eyes' midpoint to the mouth corners' midpoint.
    eyes, mouth = (p[36] + p[45]) / 2, (p[48] + p[54]) / 2
    basis = np.stack([(p[45] - p[36]) / 2, mouth - eyes], axis=1)
    if abs(float(np.linalg.det(basis))) < 1e-6:
        return
    inv = np.linalg.inv(basis)
    obs.alpha, obs.beta = (float(v) for v in inv @ (p[30] - eyes))
    # Eye opening: upper minus lower lid (two pairs per eye) along the eye-mouth axis, in
    # eye-mouth distances. Unlike the usual eye aspect ratio (height over width) it does
    # not change when a photo is tilted: a tilt squeezes the face vertically, lids and
    # mouth alike. Open eyes measure 0.08-0.16 (people differ), closed ones half that.
    lids = np.stack([p[37] - p[41], p[38] - p[40], p[43] - p[47], p[44] - p[46]], axis=1)
    obs.ear = float(np.abs((inv @ lids)[1]).mean())


def _jumped(last: Box, new: Box, gap: int) -> bool:
    """A cut or another face: compared with the last detection (``gap`` frames ago), the
    box moved by more than half its width (plus a quarter per missed frame) or resized
    by more than 1.5x."""
    w0, w1 = _width(last), _width(new)
    dx = (new[0] + new[2] - last[0] - last[2]) / 2
    dy = (new[1] + new[3] - last[1] - last[3]) / 2
    shift = math.hypot(dx, dy) / max(w0, w1, 1.0)
    return shift > 0.5 + 0.25 * gap or not (1 / 1.5 <= w1 / max(w0, 1.0) <= 1.5)


def _track(video: Video) -> list[_Obs]:
    """Follow the one face through the sampled frames (see the module docstring).

    Landmarks and measures come only from frames where HOG confirmed the face; a missed
    frame keeps the last box (for the crop search) for up to MAX_TRACK_GAP frames. Only
    then is the track lost and the largest face (if any) taken up as a new segment: a
    turned head that HOG misses for a moment is not swapped for a bystander.
    """
    out: list[_Obs] = []
    box: Box | None = None  # the track's last detection
    gap = 0  # frames since it
    segment = -1
    for i, frame in enumerate(video.frames):
        rgb = np.asarray(cv2.cvtColor(frame.image, cv2.COLOR_BGR2RGB), np.uint8)
        h, w = rgb.shape[:2]
        obs = _Obs(t=frame.t)
        found: Box | None = None
        new_segment = box is None
        faces: list[Box] = []
        if (box is None and i % 2 == 0) or (box is not None and i % DETECT_EVERY == 0):
            obs.full_pass = True
            if box is None:
                # Acquisition: the frame as it is; upsampled (4x the cost) every 5th frame.
                scale = min(1.0, face.DETECT_MAX_SIDE / max(h, w))
                faces = _hog(rgb, scale)
                if not faces and i % DETECT_EVERY == 0:
                    faces = _hog(rgb, scale, upsample=1)
                found = faces[0] if faces else None
            else:
                scale = min(MAX_UPSCALE, FULL_PASS_FACE_PX / max(_width(box), 1.0))
                faces = _hog(rgb, scale)
                last = box
                best = max(faces, key=lambda b: _iou(b, last), default=None)
                if best is not None and _iou(best, last) >= MIN_TRACK_IOU:
                    found = best
            obs.faces = len(faces)
        if found is None and box is not None:
            last = box
            near = [b for b in _roi_detect(rgb, last) if _iou(b, last) >= MIN_TRACK_IOU / 2]
            found = max(near, key=lambda b: _iou(b, last), default=None)
        if found is None:
            if box is not None:
                gap += 1
                if gap > MAX_TRACK_GAP:
                    box, gap = None, 0
            out.append(obs)
            continue
        tracked = found
        obs.comparable = sum(
            1
            for b in faces
            if _iou(b, tracked) < MIN_TRACK_IOU and _width(b) >= COMPARABLE_WIDTH * _width(tracked)
        )
        if box is not None and not new_segment and _jumped(box, found, gap):
            new_segment = True
        if new_segment:
            segment += 1
        box, gap = found, 0
        points = _landmarks(rgb, found)
        obs.box, obs.points, obs.segment, obs.detected = found, points, segment, True
        _measure(obs, points)
        out.append(obs)
    return out


# --- Actions (code) ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActionEvidence:
    """One action: whether it was seen, when, and what was measured.

    :ivar action: one of :data:`ACTIONS`.
    :ivar seen: the action happened in the clip. In a challenge result an action can be
        seen but out of the asked order (``liveness.challenge_failed`` says so); its
        times are then those of its first occurrence.
    :ivar t_start: seconds from the clip's start (first frame of the action); ``None``
        when not seen.
    :ivar t_end: last frame of the action; ``None`` when not seen.
    :ivar measured: ``blink_twice``: 2 (a pair of blinks); ``turn_left`` /
        ``turn_right``: largest yaw reached that way (degrees); ``open_mouth``: largest
        inner-lip gap over mouth width; ``nod``: pitch range (degrees). For an action
        not seen, the best value anywhere in the clip (for ``blink_twice``: the number
        of blinks).
    """

    action: str
    seen: bool
    t_start: float | None
    t_end: float | None
    measured: float


@dataclass(frozen=True, slots=True)
class _Series:
    """Per-frame measures of the tracked face (NaN where not measured)."""

    t: npt.NDArray[np.float64]
    ear: npt.NDArray[np.float64]
    mar: npt.NDArray[np.float64]  # median-filtered over 3 frames, as yaw and pitch
    yaw: npt.NDArray[np.float64]
    pitch: npt.NDArray[np.float64]
    yaw_raw: npt.NDArray[np.float64]  # unfiltered: which frames really face the camera


def _series(obs: Sequence[_Obs], *, mirrored: bool) -> _Series:
    n = len(obs)
    t = np.array([o.t for o in obs], np.float64)
    ear, mar, yaw, beta = (np.full(n, math.nan) for _ in range(4))
    for i, o in enumerate(obs):
        if not o.detected or o.box is None or math.isnan(o.alpha):
            continue
        y = math.degrees(math.atan(o.alpha / YAW_DEPTH))
        y = -y if mirrored else y
        if abs(y) > MEASURE_MAX_YAW:
            continue
        yaw[i] = y
        if _width(o.box) < MIN_MEASURE_FACE_PX:
            continue
        ear[i], mar[i], beta[i] = o.ear, o.mar, o.beta
    # Pitch relative to the neutral head position of each track segment (the median of
    # its near-frontal frames): people and cameras differ by more than a nod here.
    pitch = np.full(n, math.nan)
    segments = np.array([o.segment for o in obs])
    for seg in set(segments.tolist()) - {-1}:
        ok = (segments == seg) & (np.abs(yaw) <= NOD_MAX_YAW) & ~np.isnan(beta)
        if ok.any():
            neutral = float(np.median(beta[ok]))
            pitch[ok] = np.degrees(np.arctan((beta[ok] - neutral) / PITCH_DEPTH))
    # Blinks last one or two frames at 10 fps: the eye ratio is not smoothed.
    return _Series(
        t=t,
        ear=ear,
        mar=_median3(t, mar),
        yaw=_median3(t, yaw),
        pitch=_median3(t, pitch),
        yaw_raw=yaw,
    )


def _runs(
    t: npt.NDArray[np.float64], on: npt.NDArray[np.bool_], valid: npt.NDArray[np.bool_]
) -> list[tuple[int, int]]:
    """Maximal runs (first, last index) of ``on`` among ``valid`` frames; a run breaks
    where valid frames are more than MAX_RUN_GAP_S apart."""
    runs: list[tuple[int, int]] = []
    start = last = -1
    for k in np.flatnonzero(valid):
        i = int(k)
        if start >= 0 and (not on[i] or t[i] - t[last] > MAX_RUN_GAP_S):
            runs.append((start, last))
            start = -1
        if on[i]:
            if start < 0:
                start = i
            last = i
    if start >= 0:
        runs.append((start, last))
    return runs


def _frames(valid: npt.NDArray[np.bool_], a: int, b: int) -> int:
    """Measured frames from index ``a`` to ``b``."""
    return int(valid[a : b + 1].sum())


def _median3(t: npt.NDArray[np.float64], x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Median of each measured frame and its measured neighbours (when both are within
    MAX_RUN_GAP_S): a landmark fit that fails on one frame (a blurred or tilted picture
    folds the 68 points onto one side: 40-50 degrees of "yaw" for 0.1 s) is dropped,
    while a real action, two frames or longer at 10 fps, stays. The first and last frame
    of a run take their neighbour's value."""
    out = x.copy()
    idx = np.flatnonzero(~np.isnan(x))
    for k, i in enumerate(idx):
        near = [
            j
            for j in (idx[k - 1] if k > 0 else -1, idx[k + 1] if k + 1 < len(idx) else -1)
            if j >= 0 and abs(t[j] - t[i]) <= MAX_RUN_GAP_S
        ]
        if len(near) == 2:
            out[i] = float(np.median([x[near[0]], x[i], x[near[1]]]))
        elif len(near) == 1:  # the first or last of a run: its neighbour's value
            out[i] = x[near[0]]
    return out


def _blinks(s: _Series) -> list[tuple[int, int]]:
    """Blinks as (first, last) closed-frame indices.

    Hysteresis on the eye aspect ratio against the local open-eye level: a closure
    starts below BLINK_CLOSED x level and ends only above BLINK_OPEN x level, so a long
    closure with a flickering ratio stays one closure (and, over BLINK_MAX_S, no blink).
    A blink needs an open frame on both sides with no gap in the measures.
    """
    valid = ~np.isnan(s.ear) & (np.abs(s.yaw) <= BLINK_MAX_YAW)
    idx = np.flatnonzero(valid)
    if len(idx) < 3:
        return []
    t, ear = s.t[idx], s.ear[idx]
    # The landmarks' own jitter (robust std of frame-to-frame changes): a small or
    # blurred face's eye ratio wanders by 10-15 % with no blink at all.
    steps = np.diff(ear)
    noise = 1.4826 * float(np.median(np.abs(steps - np.median(steps)))) / math.sqrt(2)
    out: list[tuple[int, int]] = []
    state = "unknown"  # "open", "closed" or "unknown" (no open frame seen since a gap)
    start = last = -1
    for k in range(len(idx)):
        window = np.abs(t - t[k]) <= BLINK_LEVEL_WINDOW_S
        level = float(np.percentile(ear[window], 90))
        shut = min(BLINK_CLOSED * level, level - BLINK_MIN_DROP * noise)
        if k > 0 and t[k] - t[k - 1] > MAX_RUN_GAP_S:
            state = "unknown"
        if state == "closed":
            if ear[k] >= BLINK_OPEN * level:
                if t[last] - t[start] <= BLINK_MAX_S:
                    out.append((int(idx[start]), int(idx[last])))
                state = "open"
            elif ear[k] < shut:
                last = k
        elif ear[k] < shut:
            if state == "open":
                state, start, last = "closed", k, k
        elif ear[k] >= BLINK_OPEN * level:
            state = "open"
    return out


def _events(s: _Series) -> tuple[list[ActionEvidence], int]:
    """Every action occurrence in the clip, in time order, and the number of blinks."""
    t = s.t
    events: list[ActionEvidence] = []

    blinks = _blinks(s)
    # Every two consecutive blinks close enough make a "blink twice" (overlapping pairs,
    # so that a challenge can use any pair after its previous action).
    for (a, _), (c, d) in itertools.pairwise(blinks):
        if t[c] - t[a] <= BLINK_PAIR_MAX_S:
            events.append(ActionEvidence("blink_twice", True, float(t[a]), float(t[d]), 2.0))

    yaw_ok = ~np.isnan(s.yaw)
    for action, sign in (("turn_left", 1.0), ("turn_right", -1.0)):
        y = sign * np.where(yaw_ok, s.yaw, 0.0)
        rest = yaw_ok & (y <= TURN_REST_DEG)
        for a, b in _runs(t, y >= TURN_MIN_DEG, yaw_ok):
            # A turn starts from a head near frontal, not from a clip that begins turned.
            if not rest[:a].any() or _frames(yaw_ok, a, b) < MIN_ACTION_FRAMES:
                continue
            events.append(
                ActionEvidence(action, True, float(t[a]), float(t[b]), float(y[a : b + 1].max()))
            )

    mar_ok = ~np.isnan(s.mar) & (np.abs(s.yaw) <= MOUTH_MAX_YAW)
    for a, b in _runs(t, np.where(mar_ok, s.mar, 0.0) >= MOUTH_OPEN_MIN, mar_ok):
        if _frames(mar_ok, a, b) < MIN_ACTION_FRAMES:
            continue
        events.append(
            ActionEvidence(
                "open_mouth", True, float(t[a]), float(t[b]), float(np.nanmax(s.mar[a : b + 1]))
            )
        )

    pitch_ok = ~np.isnan(s.pitch)
    p = np.where(pitch_ok, np.abs(s.pitch), 0.0)
    for a, b in _runs(t, p >= NOD_MIN_DEG, pitch_ok):
        # Away and back: measured frames near neutral just before and just after.
        before = np.flatnonzero(pitch_ok[:a])
        after = np.flatnonzero(pitch_ok[b + 1 :]) + b + 1
        if not len(before) or not len(after) or t[b] - t[a] > NOD_MAX_S:
            continue
        if _frames(pitch_ok, a, b) < MIN_ACTION_FRAMES:
            continue
        i, j = int(before[-1]), int(after[0])
        if t[a] - t[i] > MAX_RUN_GAP_S or t[j] - t[b] > MAX_RUN_GAP_S:
            continue
        if p[i] > NOD_MIN_DEG / 2 or p[j] > NOD_MIN_DEG / 2:
            continue
        span = s.pitch[i : j + 1]
        events.append(
            ActionEvidence(
                "nod", True, float(t[a]), float(t[b]), float(np.nanmax(span) - np.nanmin(span))
            )
        )
    events.sort(
        key=lambda e: (e.t_start if e.t_start is not None else 0.0, ACTIONS.index(e.action))
    )
    return events, len(blinks)


def _match_challenge(
    events: Sequence[ActionEvidence], challenge: Sequence[str], best: Mapping[str, float]
) -> tuple[tuple[ActionEvidence, ...], bool]:
    """One evidence per asked action and whether all happened in the asked order.

    Greedy on start times: each action takes its earliest unused occurrence starting no
    earlier than the previous action's; that finds an ordered chain whenever one exists.
    """
    used: set[int] = set()
    after = -math.inf
    matched: list[ActionEvidence | None] = []
    for action in challenge:
        pick = next(
            (
                k
                for k, e in enumerate(events)
                if e.action == action and k not in used and (e.t_start or 0.0) >= after
            ),
            None,
        )
        if pick is None:
            matched.append(None)
            after = math.inf
            continue
        used.add(pick)
        after = events[pick].t_start or 0.0
        matched.append(events[pick])
    in_order = all(m is not None for m in matched)
    out = []
    for action, m in zip(challenge, matched, strict=True):
        if m is None:
            # Not in order: still say whether (and when first) it happened at all.
            m = next((e for e in events if e.action == action), None)
        out.append(m if m is not None else ActionEvidence(action, False, None, None, best[action]))
    return tuple(out), in_order


def _best_values(s: _Series, blinks: int) -> dict[str, float]:
    """What each action reached in the whole clip (evidence for an action not seen)."""

    def top(a: npt.NDArray[np.float64]) -> float:
        return float(np.nanmax(a)) if np.any(~np.isnan(a)) else 0.0

    pitch = s.pitch[~np.isnan(s.pitch)]
    return {
        "blink_twice": float(blinks),
        "turn_left": max(0.0, top(s.yaw)),
        "turn_right": max(0.0, top(-s.yaw)),
        "open_mouth": top(np.where(np.abs(s.yaw) <= MOUTH_MAX_YAW, s.mar, math.nan)),
        "nod": float(pitch.max() - pitch.min()) if len(pitch) else 0.0,
    }


# --- Identity (code) --------------------------------------------------------------------


def _face_box(b: Box, shape: tuple[int, ...]) -> FaceBox:
    h, w = shape[:2]
    return FaceBox(
        top=max(0, round(float(b[1]))),
        right=min(w, round(float(b[2]))),
        bottom=min(h, round(float(b[3]))),
        left=max(0, round(float(b[0]))),
    )


def _sharpness(image: Image, b: Box) -> float:
    """Variance of the Laplacian of the face, scaled to 96 px (comparable across sizes)."""
    fb = _face_box(b, image.shape)
    crop = image[fb.top : fb.bottom, fb.left : fb.right]
    if crop.size == 0:
        return 0.0
    gray = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_BGR2GRAY)
    gray = cv2.resize(gray, (96, 96), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(gray, cv2.CV_32F).var())


def _encoding_frames(obs: Sequence[_Obs], s: _Series, video: Video) -> tuple[list[int], list[int]]:
    """Frames to encode: (identity frames: the best per track segment and third of the
    clip; match frames: the MATCH_FRAMES best of the main segment, spread in time)."""
    cand = [
        i
        for i, o in enumerate(obs)
        if o.detected
        and o.box is not None
        and _width(o.box) >= MIN_MEASURE_FACE_PX  # a smaller face encodes poorly
        and not np.isnan(s.yaw_raw[i])
        and abs(s.yaw_raw[i]) <= FRONTAL_MAX_DEG
        and not (abs(s.pitch[i]) > FRONTAL_MAX_DEG)  # NaN (small face) passes
    ]
    if not cand:  # no near-frontal frame: the least turned ones
        cand = [i for i, o in enumerate(obs) if o.detected and o.box is not None]
        cand.sort(key=lambda i: abs(float(np.nan_to_num(s.yaw_raw[i], nan=90.0))))
        cand = cand[:10]
    if not cand:
        return [], []
    sharp = {i: _sharpness(video.frames[i].image, _box(obs[i])) for i in cand}
    # Eyes open: not during a blink (the encoder dislikes closed eyes).
    level = np.nanpercentile(s.ear, 90) if np.any(~np.isnan(s.ear)) else math.nan

    def score(i: int) -> float:
        closed = not math.isnan(level) and s.ear[i] < BLINK_CLOSED * level
        return sharp[i] * (0.25 if closed else 1.0)

    duration = max(video.duration_s, 1e-6)
    groups: dict[tuple[int, int], int] = {}
    for i in cand:
        key = (obs[i].segment, min(2, int(3 * obs[i].t / duration)))
        if key not in groups or score(i) > score(groups[key]):
            groups[key] = i
    seg_sizes: dict[int, int] = {}
    for o in obs:
        if o.detected:
            seg_sizes[o.segment] = seg_sizes.get(o.segment, 0) + 1
    main = max(seg_sizes, key=lambda k: seg_sizes[k])
    # The best frame of every segment first (a face change shows between segments), then
    # the best of each third of the clip.
    per_segment: dict[int, int] = {}
    for (seg, _), i in groups.items():
        if seg not in per_segment or score(i) > score(per_segment[seg]):
            per_segment[seg] = i
    first = sorted(per_segment.values(), key=lambda i: -score(i))
    rest = sorted((i for i in groups.values() if i not in first), key=lambda i: -score(i))
    identity = (first + rest)[:MAX_IDENTITY_FRAMES]

    match: list[int] = []
    pool = [i for i in cand if obs[i].segment == main]
    if not pool:  # the main segment never faced the camera: its least turned frames
        pool = [i for i, o in enumerate(obs) if o.detected and o.segment == main]
        pool.sort(key=lambda i: abs(float(np.nan_to_num(s.yaw_raw[i], nan=90.0))))
        pool = pool[: 3 * MATCH_FRAMES]
        sharp.update({i: _sharpness(video.frames[i].image, _box(obs[i])) for i in pool})
    for i in sorted(pool, key=lambda i: -score(i)):
        if all(abs(obs[i].t - obs[j].t) >= MATCH_MIN_GAP_S for j in match):
            match.append(i)
        if len(match) == MATCH_FRAMES:
            break
    return identity, match


def _compare(a: face.Embedding, b: face.Embedding, use: str) -> FaceMatch:
    try:
        return face.compare(a, b, use=use)
    except ValueError:  # a calibration without this use: its default thresholds
        return face.compare(a, b, use="default")


def _reference(portrait: Image) -> face.Embedding | None:
    found = face.largest_face(portrait)
    if found is None and max(portrait.shape[:2]) * PORTRAIT_SCALE <= 2 * face.DETECT_MAX_SIDE:
        big = np.asarray(
            cv2.resize(
                portrait, None, fx=PORTRAIT_SCALE, fy=PORTRAIT_SCALE, interpolation=cv2.INTER_CUBIC
            ),
            np.uint8,
        )
        found = face.largest_face(big)
    return None if found is None else found.encoding


# --- Replay signals ---------------------------------------------------------------------


def _residual(ref: Points, points: Points) -> float:
    """RMS distance (in eye-corner distances) of ``points`` from the best homography
    image of ``ref``."""
    h, _ = cv2.findHomography(ref, points, 0)
    if h is None:
        return math.nan
    proj = cv2.perspectiveTransform(ref.reshape(-1, 1, 2), h).reshape(-1, 2)
    iod = max(float(np.linalg.norm(points[45] - points[36])), 1.0)
    return float(np.sqrt(((proj - points) ** 2).sum(axis=1).mean())) / iod


def _nonrigid(obs: Sequence[_Obs]) -> float:
    """How much more than a flat picture the landmarks deform. Per frame, the RMS residual
    (in eye-corner distances) of the best homography from a reference frame of its track
    segment, median-filtered over 3 frames (one failed fit is not a deformation); then
    the 90th percentile minus the median over the clip.

    A photo moved, zoomed, turned or tilted in front of the camera is a plane, so a
    homography explains it up to the landmark noise, which is about the same in every
    frame (and larger for a small or blurred face): the spread is small. A live head
    turning, blinking, nodding or talking deforms in some frames more than in others.
    The reference is whichever of 5 frames spread over the segment the others fit best
    (a failed fit makes a poor reference).
    """
    segments: dict[int, list[_Obs]] = {}
    for o in obs:
        if o.detected and o.points is not None and _width(_box(o)) >= REPLAY_MIN_FACE_PX:
            segments.setdefault(o.segment, []).append(o)
    times: list[float] = []
    residuals: list[float] = []
    for frames in segments.values():
        if len(frames) < 2:
            continue
        best: list[float] | None = None
        for k in np.linspace(0, len(frames) - 1, min(5, len(frames))):
            ref = frames[round(float(k))].points
            assert ref is not None
            res = [_residual(ref, o.points) for o in frames if o.points is not None]
            if best is None or np.nanmedian(res) < np.nanmedian(best):
                best = res
        assert best is not None
        times += [o.t for o in frames]
        residuals += best
    if sum(1 for r in residuals if not math.isnan(r)) < REPLAY_MIN_FRAMES:
        return math.nan
    order = np.argsort(times)
    smooth = _median3(np.array(times)[order], np.array(residuals)[order])
    return float(np.nanpercentile(smooth, 90) - np.nanpercentile(smooth, 50))


@cache
def _spectral_band(size: int) -> npt.NDArray[np.bool_]:
    f = np.fft.fftshift(np.fft.fftfreq(size))
    radius = np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    band: npt.NDArray[np.bool_] = (radius > MOIRE_MIN_FREQ) & (radius < 0.45)
    # Not the lines where an 8 px block codec puts its own peaks.
    for k in range(-4, 5):
        band &= (np.abs(f[:, None] - k / 8) > 1.5 / size) & (
            np.abs(f[None, :] - k / 8) > 1.5 / size
        )
    band.flags.writeable = False
    return band


def _spectral_peak(gray: Image) -> float:
    """Prominence of the sharpest isolated peak in the 2-D spectrum of a square patch: a
    screen's pixel grid and its moire are periodic, skin and hair are not."""
    g = gray.astype(np.float32)
    g -= g.mean()
    size = g.shape[0]
    g *= cv2.createHanningWindow((size, size), cv2.CV_32F)
    dft = cv2.dft(g, flags=cv2.DFT_COMPLEX_OUTPUT)
    logs = np.fft.fftshift(np.log(cv2.magnitude(dft[:, :, 0], dft[:, :, 1]) + 1e-3))
    resid = logs - cv2.blur(logs, (9, 9))
    return float(np.exp(resid[_spectral_band(size)].max()))


def _moire(obs: Sequence[_Obs], video: Video) -> float:
    """Median spectral-peak prominence of a patch of the face (cheeks, nose, mouth) in up
    to MOIRE_FRAMES frames spread over the clip."""
    usable = [i for i, o in enumerate(obs) if o.detected and o.box is not None]
    if not usable:
        return math.nan
    picks = [
        usable[round(k)] for k in np.linspace(0, len(usable) - 1, min(MOIRE_FRAMES, len(usable)))
    ]
    peaks = []
    for i in sorted(set(picks)):
        b = obs[i].box
        assert b is not None
        image = video.frames[i].image
        side = int(min(_width(b) * 0.7, MOIRE_PATCH))
        if side < 32:
            continue
        cx, cy = int((b[0] + b[2]) / 2), int(b[1] + 0.55 * (b[3] - b[1]))
        x0, y0 = cx - side // 2, cy - side // 2
        if x0 < 0 or y0 < 0 or x0 + side > image.shape[1] or y0 + side > image.shape[0]:
            continue
        gray = cv2.cvtColor(
            np.ascontiguousarray(image[y0 : y0 + side, x0 : x0 + side]), cv2.COLOR_BGR2GRAY
        )
        peaks.append(_spectral_peak(np.asarray(gray, np.uint8)))
    return float(np.median(peaks)) if peaks else math.nan


def _flicker(video: Video) -> float:
    """Frame-to-frame brightness oscillation: the median of |level - mean of its two
    neighbours| of the frames' mean grey level, relative to the level. A screen's
    refresh and backlight beat with the camera's exposure and make the level zigzag;
    auto-exposure drifts smoothly, and a cut is a single step (the median ignores it)."""
    if len(video.frames) < 8:
        return math.nan
    levels = np.array(
        [
            float(cv2.mean(cv2.cvtColor(f.image[::4, ::4], cv2.COLOR_BGR2GRAY))[0])
            for f in video.frames
        ]
    )
    zigzag = np.abs(levels[1:-1] - (levels[:-2] + levels[2:]) / 2)
    return float(np.median(zigzag)) / max(float(levels.mean()), 1.0)


# --- Public API -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LivenessResult:
    """Outcome of :func:`check_liveness`; ``passed`` when no reason was raised.

    :ivar actions: one evidence per asked action, in the asked order.
    :ivar face_match: the tracked face vs the reference (median of the
        :data:`MATCH_FRAMES` best frames' comparisons), ``None`` without a reference or
        a face.
    :ivar replay_signals: ``blinks`` (count), ``nonrigid`` (eye-corner distances; low =
        deforms no more than a flat picture, see :data:`NONRIGID_MIN`), ``moire``
        (spectral peak prominence), ``flicker`` (relative brightness oscillation), and
        the verdicts ``still_photo`` and ``screen`` (1.0 = fired). NaN where not
        measurable.
    :ivar frames_analysed: sampled frames looked at.
    :ivar faces_per_frame_max: most faces any full-frame detection pass found.
    :ivar timings_ms: CPU milliseconds per stage.
    """

    passed: bool
    reasons: tuple[str, ...]
    actions: tuple[ActionEvidence, ...]
    face_match: FaceMatch | None
    replay_signals: Mapping[str, float]
    frames_analysed: int
    faces_per_frame_max: int
    timings_ms: Mapping[str, float] = field(default_factory=dict)


def analyse_actions(video: Video, *, mirrored: bool = False) -> tuple[ActionEvidence, ...]:
    """Every action occurrence the clip shows, in time order (no challenge, no identity).

    ``blink_twice`` is reported for every two consecutive blinks at most
    :data:`BLINK_PAIR_MAX_S` apart (overlapping pairs).
    """
    obs = _track(video)
    events, _ = _events(_series(obs, mirrored=mirrored))
    return tuple(events)


def check_liveness(
    video: Video,
    challenge: Sequence[str],
    *,
    reference_portrait: Image | None = None,
    reference_encoding: face.Embedding | None = None,
    mirrored: bool = False,
) -> LivenessResult:
    """Check an activation video against its challenge and the verified ID portrait.

    :param video: the decoded clip (:func:`vision.video.decode_video`).
    :param challenge: the asked actions, in order (each one of :data:`ACTIONS`).
    :param reference_portrait: the verified ID portrait (BGR); ignored when
        ``reference_encoding`` is given.
    :param reference_encoding: its dlib embedding, when already known.
    :param mirrored: the clip was flipped left-right before upload (see the module
        docstring); swaps ``turn_left`` and ``turn_right``.
    :raises ValueError: on an empty challenge or an unknown action.
    """
    if not challenge:
        raise ValueError("empty challenge")
    unknown = [a for a in challenge if a not in ACTIONS]
    if unknown:
        raise ValueError(f"unknown challenge actions {unknown}; known: {list(ACTIONS)}")
    timer = StageTimer()
    obs = _track(video)
    timer.lap("track")
    series = _series(obs, mirrored=mirrored)
    events, blinks = _events(series)
    actions, in_order = _match_challenge(events, challenge, _best_values(series, blinks))
    timer.lap("actions")

    n = len(obs)
    detected = sum(1 for o in obs if o.detected)
    faces_max = max([o.faces for o in obs if o.full_pass] + [1 if detected else 0])
    multiple_passes = sum(1 for o in obs if o.full_pass and o.comparable > 0)
    reasons: list[str] = []
    if n == 0 or detected < MIN_FACE_FRACTION * n:
        reasons.append("face.not_found")
    if multiple_passes >= MULTIPLE_MIN_PASSES:
        reasons.append("face.multiple")

    # Identity: the same face throughout, and the ID portrait's.
    face_match: FaceMatch | None = None
    if detected:
        identity, match = _encoding_frames(obs, series, video)
        encodings: dict[int, face.Embedding] = {}

        def encoding(i: int) -> face.Embedding:
            if i not in encodings:
                b = obs[i].box
                assert b is not None
                image = video.frames[i].image
                encodings[i] = face.encode_face(image, _face_box(b, image.shape))
            return encodings[i]

        anchor = match[0] if match else identity[0] if identity else None
        if anchor is not None:
            for i in identity:
                if i == anchor:
                    continue
                if _compare(encoding(anchor), encoding(i), "default").score < FACE_CHANGED_SCORE:
                    reasons.append("face.changed")
                    break
        timer.lap("identity")
        ref = reference_encoding
        if ref is None and reference_portrait is not None:
            ref = _reference(reference_portrait)
            if ref is None:
                reasons.append("face.portrait_not_found")
        timer.lap("reference")
        if ref is not None and match:
            results = sorted(
                (_compare(encoding(i), ref, "selfie_vs_portrait") for i in match),
                key=lambda m: m.score,
            )
            face_match = results[(len(results) - 1) // 2]  # the median; the lower of two
            if face_match.verdict == "no_match":
                reasons.append("face.mismatch")
            elif face_match.verdict == "gray":
                reasons.append("face.uncertain")
        timer.lap("match")

    if not in_order:
        reasons.append("liveness.challenge_failed")

    nonrigid = _nonrigid(obs)
    moire = _moire(obs, video)
    flicker = _flicker(video)
    still = blinks == 0 and not math.isnan(nonrigid) and nonrigid < NONRIGID_MIN
    screen = (not math.isnan(moire) and moire > MOIRE_MAX) or (
        not math.isnan(flicker) and flicker > FLICKER_MAX
    )
    # (A screen's flicker shows with or without a face found on it.)
    if still or screen:
        reasons.append("liveness.replay_suspected")
    timer.lap("replay")

    order = (
        "liveness.challenge_failed",
        "liveness.replay_suspected",
        "face.not_found",
        "face.multiple",
        "face.changed",
        "face.mismatch",
        "face.uncertain",
        "face.portrait_not_found",
    )
    reasons.sort(key=order.index)
    return LivenessResult(
        passed=not reasons,
        reasons=tuple(reasons),
        actions=actions,
        face_match=face_match,
        replay_signals={
            "blinks": float(blinks),
            "nonrigid": nonrigid,
            "moire": moire,
            "flicker": flicker,
            "still_photo": float(still),
            "screen": float(screen),
        },
        frames_analysed=n,
        faces_per_frame_max=int(faces_max),
        timings_ms={k: round(v, 1) for k, v in timer.ms.items()},
    )
