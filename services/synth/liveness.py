"""Synthetic clips for the video activation check (R7): genuine variants and attacks.

The customer records a short selfie video doing a random challenge of 2-3 actions from
:data:`ACTIONS`, in order. This module makes a labelled set to measure a checker on:

- ``genuine``: sub-clips of the real videos of the shared face set (``faces/videos``),
  re-scaled, re-cropped, brighter or darker, noisier, sometimes mirrored (a horizontal
  flip swaps ``turn_left`` and ``turn_right``), re-encoded as WebM (VP8) or MP4 (MPEG-4
  part 2). The challenge asks only actions the sub-clip really shows, in their order
  (:func:`challenge_for`); the reference is a still of the same person.
- attacks, each a kind of its own:

  ``still_photo``    a real face photo held up to the camera as a flat print: panned,
                     zoomed and tilted (about all three axes, in time with the challenge's
                     turns and nods, as an attacker would), before an indoor background,
                     with a hand, lens softness, exposure flicker and sensor noise;
  ``id_portrait``    a synthetic ID card front (``services.synth.card``) printed with a
                     real portrait, held up and moved the same way;
  ``screen_replay``  a photo, or a genuine clip, shown on a phone/monitor screen and filmed:
                     sub-pixel grid, moire, bezel, refresh flicker, colour cast, raised
                     blacks, a reflection; a replayed clip really performs its actions;
  ``wrong_order``    a clip with two distinct actions asked for them in the reverse
                     order; no take of the shared videos shows two distinct actions,
                     so it is two sub-clips of one video joined, the second mirrored
                     (a turn one way, then the other), with the right order kept as
                     ``control_challenge``;
  ``other_person``   a genuine clip checked against someone else's reference photo (a
                     ``(clip, reference)`` pair: no new video);
  ``two_faces``      a genuine clip with a second person's face composited next to the
                     subject's.

``manifest.jsonl`` holds one JSON object per row (see :func:`generate`). Everything is
drawn from ``random.Random`` instances seeded with ``(seed, kind, index)``, so the plan
(every parameter) is a pure function of the seed and the output of the same library
versions is reproducible.

``python -m services.synth.liveness --out DIR --seed N --count-per-kind K [--sample]``
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import random
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from itertools import combinations, pairwise, permutations
from pathlib import Path
from typing import Any, Final

import cv2
import numpy as np
import numpy.typing as npt

from services.synth.capture import (
    _composite,
    _sensor_noise,
    _smooth_noise,
    _to_uint8,
    card_alpha,
)
from services.synth.card import Image8
from services.synth.identity import generate_identity
from services.synth.portrait import MIT_PHOTOS, _face_box, default_faces_dir, load_rgb

FloatImage = npt.NDArray[np.float32]
Row = dict[str, Any]

# The checker's vocabulary (vision.liveness.ACTIONS); repeated here so that the generator
# does not depend on the checker (a test asserts that the two agree).
ACTIONS: Final = ("blink_twice", "turn_left", "turn_right", "open_mouth", "nod")
GENUINE: Final = "genuine"
ATTACK_KINDS: Final = (
    "still_photo",
    "id_portrait",
    "screen_replay",
    "wrong_order",
    "other_person",
    "two_faces",
)
KINDS: Final = (GENUINE, *ATTACK_KINDS)
# Kinds that are a genuine clip paired with another reference (no new video).
PAIR_KINDS: Final = ("other_person",)
MANIFEST_NAME: Final = "manifest.jsonl"

# What a checker should say: ``expected_outcome`` and at least one of ``expected_reasons``
# (an attack counts as refused whatever the reasons; the reasons are diagnostics).
EXPECTED_REASONS: Final[dict[str, tuple[str, ...]]] = {
    GENUINE: (),
    "still_photo": ("liveness.challenge_failed", "liveness.replay_suspected"),
    "id_portrait": ("liveness.challenge_failed", "liveness.replay_suspected"),
    "screen_replay": ("liveness.replay_suspected", "liveness.challenge_failed"),
    "wrong_order": ("liveness.challenge_failed",),
    "other_person": ("face.mismatch", "face.uncertain"),
    "two_faces": ("face.multiple",),
}

# A flip of the picture mirrors the head's turns.
_MIRRORED: Final = {"turn_left": "turn_right", "turn_right": "turn_left"}

# Two blinks starting at most this far apart are a ``blink_twice`` (vision.liveness).
BLINK_PAIR_MAX_S: Final = 2.0

SAMPLE_MAX_SIDE: Final = 480
# fixtures/liveness: ``python -m services.synth.liveness --out fixtures/liveness --sample``
SAMPLE_SEED: Final = 9
BENCH_MAX_SIDE: Final = 640


# --- the real videos and what happens in them ------------------------------------------


@dataclass(frozen=True, slots=True)
class ActionSpan:
    """One action performed from ``t_start`` to ``t_end`` (seconds)."""

    action: str
    t_start: float
    t_end: float

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "t_start": self.t_start, "t_end": self.t_end}


@dataclass(frozen=True, slots=True)
class SourceClip:
    """A real video of the shared face set and the ground truth of what it shows.

    ``events`` are in seconds of the source video; ``"blink"`` events (single blinks)
    become ``blink_twice`` spans in :func:`actions_in`. ``windows`` are the stretches a
    sub-clip may come from: one camera shot, the subject's face in view, no long eye
    closure (a closure of seconds is no blink).
    """

    name: str
    video: str  # relative to the faces folder
    identity: str | None  # whose face (None: a private person, not in the face set)
    licence: str
    committable: bool  # may derived clips be committed to this repository?
    windows: tuple[tuple[float, float], ...]
    events: tuple[ActionSpan, ...]
    reference_photo: str | None  # a still of the same person, relative to the faces folder
    reference_frames: tuple[float, ...] = ()  # else: frames of the clip itself (seconds)
    size: tuple[int, int] = (640, 360)  # width, height of the video
    note: str = ""


# Ground truth: dlib's 68 landmarks on every 0.1 s of each video (eye aspect ratio,
# mouth opening, nose position), checked by eye and against vision.liveness's measures
# (its thresholds define an action: a turn is a yaw past 25 degrees from a rest within
# 15 degrees of frontal, a blink a dip of the eye ratio below 0.75 of its open level).
# Only clear events are listed: the singer's brief mouth openings and head bobs, the
# interviewee's talking are not asked for. Turns are named from the subject's side in the
# unmirrored picture (vision.liveness's convention): ``turn_left`` = the subject turns to
# their own left, the nose moves towards the right of the image. A turn's span starts
# where the head leaves its rest. See fixtures/README.md (``liveness/``).
SOURCES: Final[tuple[SourceClip, ...]] = (
    SourceClip(
        name="hamilton",
        video="videos/hamilton_clip_lin-manuel-miranda.mp4",
        identity="Lin-Manuel_Miranda",
        licence="MIT (ageitgey/face_recognition repository)",
        committable=True,
        # Miranda singing, mostly frontal (frames ~85-212; a zoom cut at ~4.0 s). Before
        # and after: a wide stage shot and the audience.
        windows=((2.85, 7.05),),
        events=(
            # Frontal at 3.0-3.2 s, 25 degrees at ~3.7 s, up to 40 degrees, back by 4.8 s.
            ActionSpan("turn_right", 3.3, 4.7),
            # From frontal at 6.0 s to 30 degrees at ~6.8 s, still turned at the cut.
            ActionSpan("turn_right", 6.3, 6.75),
        ),
        reference_photo="people/Lin-Manuel_Miranda/1.png",
        size=(640, 360),
        note="a stage performance, not a selfie: singing opens the mouth briefly, often",
    ),
    SourceClip(
        name="blink",
        video="videos/blink_frontal_selfie.mp4",
        identity=None,
        licence="none stated (repeating/Blink-Detector)",
        committable=False,
        # The long eye closures (5.8-8.1 s, 11.0-13.8 s) are left out.
        windows=((0.0, 5.6), (8.3, 10.95)),
        events=(
            ActionSpan("blink", 0.38, 0.62),
            ActionSpan("blink", 1.68, 1.92),
            ActionSpan("blink", 3.40, 3.62),
            ActionSpan("blink", 4.66, 4.86),
            ActionSpan("blink", 9.18, 9.42),
            ActionSpan("blink", 9.98, 10.20),
        ),
        reference_photo=None,
        # Eyes open, no blink within 0.4 s.
        reference_frames=(2.6, 9.7),
        size=(480, 854),
        note="a private person with no other photo: the reference is a frame of the clip",
    ),
    SourceClip(
        name="orlando",
        video="videos/orlando_bloom_head_turn.avi",
        identity="Orlando_Bloom",
        licence="none stated (SueGreen/face-pose-estimation)",
        committable=False,
        windows=((0.0, 5.56),),
        # Starts turned 40-55 degrees to his left (no rest: not a turn), turns to about
        # 20 degrees, then at ~4.9 s sharply to his right, 40-50 degrees, to the end.
        events=(ActionSpan("turn_right", 4.8, 5.1),),
        reference_photo="people/Orlando_Bloom/1.jpg",
        size=(320, 240),
        note="an interview, three-quarter view; small background faces in some frames",
    ),
)
SOURCE_BY_NAME: Final = {s.name: s for s in SOURCES}
# An event needs this much of the clip before and after it (a blink needs open eyes on
# both sides, a turn its rest): three frames at the checker's 10 fps.
EVENT_MARGIN_S: Final = 0.3


def actions_in(source: SourceClip, start: float, end: float) -> tuple[ActionSpan, ...] | None:
    """The actions a sub-clip ``[start, end]`` shows, in sub-clip seconds, in time order.

    ``None`` when an event, with :data:`EVENT_MARGIN_S` either side, is only partly in
    the sub-clip (half a blink or half a turn is neither shown nor absent: such a
    sub-clip is not used).
    """
    inside: list[ActionSpan] = []
    for ev in source.events:
        lo, hi = ev.t_start - EVENT_MARGIN_S, ev.t_end + EVENT_MARGIN_S
        if hi <= start or lo >= end:
            continue
        if lo < start or hi > end:
            return None
        inside.append(ev)
    spans: list[ActionSpan] = []
    blinks = [ev for ev in inside if ev.action == "blink"]
    for first, second in pairwise(blinks):
        if second.t_start - first.t_start <= BLINK_PAIR_MAX_S:
            spans.append(ActionSpan("blink_twice", first.t_start, second.t_end))
    spans.extend(ev for ev in inside if ev.action != "blink")
    shifted = [
        ActionSpan(s.action, round(s.t_start - start, 3), round(s.t_end - start, 3)) for s in spans
    ]
    return tuple(sorted(shifted, key=lambda s: (s.t_start, s.t_end, s.action)))


def mirrored(spans: Sequence[ActionSpan]) -> tuple[ActionSpan, ...]:
    """The same actions seen in a horizontally flipped picture."""
    return tuple(ActionSpan(_MIRRORED.get(s.action, s.action), s.t_start, s.t_end) for s in spans)


# --- challenges ------------------------------------------------------------------------


def satisfiable(spans: Sequence[ActionSpan], challenge: Sequence[str], *, strict: bool) -> bool:
    """Whether the clip performs ``challenge`` in order.

    ``strict``: each action must start after the previous one ended (what a genuine
    challenge is built to meet). Not strict: each must merely start no earlier than the
    previous one started (the most lenient reading a checker could have, and
    vision.liveness's: a wrong-order pair must fail even that).
    """

    def search(i: int, after_start: float, after_end: float) -> bool:
        if i == len(challenge):
            return True
        for s in spans:
            if s.action != challenge[i]:
                continue
            ok = s.t_start >= after_end if strict else s.t_start >= after_start
            if ok and search(i + 1, s.t_start, s.t_end):
                return True
        return False

    return search(0, -math.inf, -math.inf)


def challenge_for(
    actions_seen: Sequence[ActionSpan], rng: random.Random, n: tuple[int, int] = (2, 3)
) -> tuple[str, ...]:
    """A random challenge of ``n[0]..n[1]`` distinct actions the clip really shows, in an
    order it shows them (each starting after the previous one ended).

    Where the clip allows no chain of ``n[0]`` distinct actions, the challenge is as long
    as the clip allows (each take of the shared videos shows one kind of action);
    :class:`ValueError` when it shows none.
    """
    lo, hi = n
    if not 1 <= lo <= hi:
        raise ValueError(f"bad challenge length range {n}")
    distinct: list[str] = []
    for s in sorted(actions_seen, key=lambda s: (s.t_start, s.t_end)):
        if s.action not in ACTIONS:
            raise ValueError(f"unknown action {s.action!r}")
        if s.action not in distinct:
            distinct.append(s.action)
    if not distinct:
        raise ValueError("the clip shows no action: no challenge can be asked")
    options: dict[int, list[tuple[str, ...]]] = {}
    for length in range(1, min(hi, len(distinct)) + 1):
        found = [
            c for c in permutations(distinct, length) if satisfiable(actions_seen, c, strict=True)
        ]
        if not found:
            break  # a chain of k actions contains chains of every shorter length
        options[length] = found
    longest = max(options)
    want = rng.randint(min(lo, longest), longest)
    return rng.choice(options[want])


def reversed_challenge(spans: Sequence[ActionSpan], rng: random.Random) -> tuple[str, ...] | None:
    """A challenge of 2-3 of the clip's actions in an order the clip does *not* show,
    even read leniently (:func:`satisfiable` ``strict=False``); ``None`` if there is none.
    """
    ordered: list[str] = []
    for s in sorted(spans, key=lambda s: (s.t_start, s.t_end)):
        if s.action not in ordered:
            ordered.append(s.action)
    options = [
        tuple(reversed(c))
        for length in (2, 3)
        for c in combinations(ordered, length)
        if satisfiable(spans, c, strict=True)
        and not satisfiable(spans, tuple(reversed(c)), strict=False)
    ]
    return rng.choice(options) if options else None


# --- plans: every random choice, before any pixel ----------------------------------------


def _rng(seed: int, *parts: object) -> random.Random:
    # String seeds are hashed with SHA-512 by random.Random: stable across runs and hosts.
    return random.Random(":".join(["simgate-liveness", str(seed), *map(str, parts)]))


@dataclass(frozen=True, slots=True)
class Mode:
    """Generation settings: the committed sample or the benchmark set."""

    sample: bool
    max_side: int
    fps: tuple[float, ...]
    duration: tuple[float, float]
    noise: tuple[float, float]  # sensor noise sigma of rendered attacks (8-bit levels)
    scale: tuple[float, float]  # genuine clips: size as a fraction of ``max_side``

    @property
    def sources(self) -> tuple[SourceClip, ...]:
        return tuple(s for s in SOURCES if s.committable or not self.sample)


# The sample is small: 10 fps, little noise (noise is what MPEG-4 spends its bits on).
SAMPLE_MODE: Final = Mode(
    sample=True,
    max_side=SAMPLE_MAX_SIDE,
    fps=(10.0,),
    duration=(3.0, 4.2),
    noise=(0.6, 1.2),
    scale=(0.9, 1.0),
)
BENCH_MODE: Final = Mode(
    sample=False,
    max_side=BENCH_MAX_SIDE,
    fps=(15.0, 20.0, 25.0),
    duration=(2.5, 6.0),
    noise=(1.0, 3.0),
    scale=(0.75, 1.0),
)


def _r(x: float, nd: int = 3) -> float:
    return round(float(x), nd)


def _photos_of(faces_dir: Path, identity: str, *, mit_only: bool) -> list[str]:
    """Photos of ``identity`` (relative to the faces folder), MIT-licensed ones first."""
    mit = [p for p in MIT_PHOTOS if p.split("/")[1] == identity]
    if mit_only:
        return mit
    folder = faces_dir / "people" / identity
    others = (
        sorted(
            f"people/{identity}/{p.name}"
            for p in folder.iterdir()
            if p.suffix.lower() in {".jpg", ".jpeg", ".png"}
        )
        if folder.is_dir()
        else []
    )
    return mit + [p for p in others if p not in mit and not p.endswith("/4.jpg")]


def _other_people_photos(faces_dir: Path, exclude: str | None, *, mit_only: bool) -> list[str]:
    """Photos of everyone but ``exclude``: MIT ones, and with ``mit_only`` False LFW too."""
    photos = [p for p in MIT_PHOTOS if p.split("/")[1] != exclude]
    if not mit_only and (faces_dir / "people").is_dir():
        for folder in sorted((faces_dir / "people").iterdir()):
            if folder.name == exclude or not folder.is_dir():
                continue
            photos.extend(p for p in _photos_of(faces_dir, folder.name, mit_only=False))
    # Kit_Harington/1.jpg is a wide shot with a tiny face.
    return sorted(dict.fromkeys(p for p in photos if p != "people/Kit_Harington/1.jpg"))


# Still, ID and screen attacks use the MIT photos with a usable face (no tiny faces).
ATTACK_PHOTOS: Final = tuple(p for p in MIT_PHOTOS if p != "people/Kit_Harington/1.jpg")


def _pick_window(
    rng: random.Random,
    source: SourceClip,
    duration: tuple[float, float],
) -> tuple[float, float, tuple[ActionSpan, ...]]:
    """A sub-clip of ``source`` around one of its events (``duration`` long where the
    event and the source allow), with only whole events in it; and its actions in
    sub-clip seconds."""
    lo, hi = duration
    for _ in range(300):
        event = rng.choice(source.events)
        w0, w1 = next(w for w in source.windows if w[0] <= event.t_start < w[1])
        need0, need1 = event.t_start - EVENT_MARGIN_S, event.t_end + EVENT_MARGIN_S
        length = min(w1 - w0, max(rng.uniform(lo, hi), need1 - need0))
        first, last = max(w0, need1 - length), min(need0, w1 - length)
        if first > last:
            continue
        start = round(rng.uniform(first, last), 2)
        end = round(min(w1, start + length), 2)
        spans = actions_in(source, start, end)
        if spans:
            return start, end, spans
    raise ValueError(f"no sub-clip of {source.name} holds a whole action")


def frame_count(start: float, end: float, fps: float) -> int:
    """Frames a part ``[start, end)`` of a source gives at ``fps`` (first at ``start``)."""
    return max(1, math.floor((end - start) * fps + 1e-6))


def _reference_for(source: SourceClip, start: float, end: float) -> dict[str, Any]:
    """The still the clip's face is compared with: a photo, or a frame outside the clip."""
    if source.reference_photo is not None:
        return {"photo": source.reference_photo, "identity": source.identity}
    outside = [t for t in source.reference_frames if not start - 0.5 <= t <= end + 0.5]
    t = (outside or list(source.reference_frames))[0]
    return {
        "frame_of": source.video,
        "t": t,
        "file": f"refs/{source.name}_t{t:05.2f}.png",
        "identity": source.identity,
    }


def _look(rng: random.Random, source_size: tuple[int, int], mode: Mode) -> dict[str, Any]:
    """How a genuine clip is re-shot: crop, size, flip, light, noise, codec, frame rate."""
    w, h = source_size
    zoom = rng.uniform(1.0, 1.15)
    scale = min(1.0, mode.max_side / max(w, h)) * rng.uniform(*mode.scale)
    out_w, out_h = (max(64, 2 * round(v * scale / 2)) for v in (w, h))
    return {
        "flip": rng.random() < 0.3,
        "zoom": _r(zoom),
        "crop_centre": [_r(rng.uniform(0.45, 0.55)), _r(rng.uniform(0.45, 0.55))],
        "size": [out_w, out_h],
        "gain": _r(rng.uniform(0.8, 1.2)),
        "gamma": _r(rng.uniform(0.85, 1.15)),
        "noise_sigma": _r(rng.uniform(0.0, mode.noise[1]), 2),
        "codec": "VP80" if rng.random() < (0.5 if mode.sample else 0.25) else "mp4v",
        "fps": rng.choice(mode.fps),
    }


def _source_json(source: SourceClip, parts: Sequence[tuple[float, float, bool]]) -> Row:
    return {
        "video": source.video,
        "licence": source.licence,
        "parts": [{"start": a, "end": b, "mirrored": m} for a, b, m in parts],
    }


def _clip_row(
    kind: str,
    index: int,
    source: SourceClip,
    parts: Sequence[tuple[float, float, bool]],
    spans: Sequence[ActionSpan],
    look: dict[str, Any],
    challenge: Sequence[str],
) -> Row:
    """A row whose video is made from a real clip (genuine, two_faces, wrong_order)."""
    return {
        "id": f"{kind}_{index:03d}",
        "kind": kind,
        "label": "genuine" if kind == GENUINE else "attack",
        "path": f"clips/{kind}_{index:03d}.{_ext(look['codec'])}",
        "challenge": list(challenge),
        "reference": _reference_for(source, parts[0][0], parts[-1][1]),
        "face_identity": source.identity or f"{source.name}_subject",
        "actions": [s.to_json() for s in spans],
        "source": _source_json(source, parts),
        "params": {"look": look},
        "expected_outcome": "passed" if kind == GENUINE else "rejected",
        "expected_reasons": list(EXPECTED_REASONS[kind]),
    }


def _genuine_plan(seed: int, index: int, mode: Mode, kind: str = GENUINE) -> Row:
    """One take of a real video: a sub-clip, re-shot (:func:`_look`)."""
    rng = _rng(seed, kind, index)
    sources = mode.sources
    source = sources[index % len(sources)]
    start, end, spans = _pick_window(rng, source, mode.duration)
    look = _look(rng, source.size, mode)
    if look["flip"]:
        spans = mirrored(spans)
    challenge = challenge_for(spans, rng)
    return _clip_row(kind, index, source, [(start, end, False)], spans, look, challenge)


def _wrong_order_plan(seed: int, index: int, mode: Mode) -> Row:
    """A clip with two distinct actions, asked in the reverse order.

    No take of the shared videos shows two distinct actions clearly (one blinks, the
    others turn one way), so the clip is two sub-clips of one video joined by a cut, the
    second mirrored: a turn one way, then the other. ``control_challenge`` asks the
    same actions in their real order: a checker should accept that, or the refusal of
    the reversed order proves nothing.
    """
    kind = "wrong_order"
    rng = _rng(seed, kind, index)
    turning = [s for s in mode.sources if any(e.action.startswith("turn_") for e in s.events)]
    source = turning[index % len(turning)]
    lo, hi = mode.duration
    for _ in range(50):
        look = _look(rng, source.size, mode)
        fps = float(look["fps"])
        half = (max(1.0, lo / 2), max(1.2, hi / 2))
        a0, a1, first = _pick_window(rng, source, half)
        b0, b1, second = _pick_window(rng, source, half)
        offset = frame_count(a0, a1, fps) / fps
        spans = list(first) + [
            ActionSpan(s.action, _r(s.t_start + offset), _r(s.t_end + offset))
            for s in mirrored(second)
        ]
        if look["flip"]:
            spans = list(mirrored(spans))
        wrong = reversed_challenge(spans, rng)
        if wrong is not None:
            row = _clip_row(kind, index, source, [(a0, a1, False), (b0, b1, True)], spans,
                            look, wrong)  # fmt: skip
            row["control_challenge"] = list(reversed(wrong))
            return row
    raise ValueError(f"no wrong-order clip can be made from {source.name}")


def _ext(codec: str) -> str:
    return "webm" if codec == "VP80" else "mp4"


def _attack_frame(rng: random.Random, mode: Mode) -> dict[str, Any]:
    """Output frame, rate, length and camera of a rendered attack."""
    side = mode.max_side
    portrait = rng.random() < 0.7
    short = 2 * round(side * 0.75 / 2)
    size = [short, side] if portrait else [side, short]
    return {
        "size": size,
        "fps": rng.choice(mode.fps),
        "duration": _r(rng.uniform(*mode.duration), 2),
        "codec": "VP80" if rng.random() < (0.0 if mode.sample else 0.1) else "mp4v",
        "blur_sigma": _r(rng.uniform(0.5, 1.2)),
        "noise_sigma": _r(rng.uniform(*mode.noise), 2),
        "exposure_flicker": _r(rng.uniform(0.0, 0.06)),
        "room_seed": rng.getrandbits(32),
        "camera_shake_px": _r(rng.uniform(0.5, 3.0), 2),
    }


def _mimic(rng: random.Random, challenge: Sequence[str], duration: float) -> list[dict[str, Any]]:
    """How the attacker moves the print or screen to fake each action, one slot each."""
    slots: list[dict[str, Any]] = []
    lo, hi = 0.12 * duration, 0.92 * duration
    step = (hi - lo) / max(1, len(challenge))
    for k, action in enumerate(challenge):
        t0 = lo + k * step + rng.uniform(0, 0.15) * step
        t1 = lo + (k + 1) * step - rng.uniform(0, 0.15) * step
        move: dict[str, Any] = {"action": action, "t_start": _r(t0, 2), "t_end": _r(t1, 2)}
        if action in ("turn_left", "turn_right"):
            # Turning the print about its vertical axis (sign: the side it turns to).
            move["yaw_deg"] = _r(rng.uniform(20, 45) * (1 if action == "turn_left" else -1), 1)
        elif action == "nod":
            move["pitch_deg"] = _r(rng.uniform(15, 35), 1)
        else:  # blinks and a mouth cannot be faked with a print: shake it instead
            move["shake_deg"] = _r(rng.uniform(3, 8), 1)
            move["shake_hz"] = _r(rng.uniform(2, 4), 2)
        slots.append(move)
    return slots


def _motion(rng: random.Random) -> dict[str, Any]:
    """Slow drift, zoom and roll of a hand-held object, plus tremor."""
    return {
        "centre": [_r(rng.uniform(0.4, 0.6)), _r(rng.uniform(0.36, 0.5))],
        "pan": [_r(rng.uniform(-0.08, 0.08)), _r(rng.uniform(-0.06, 0.06))],
        "sway": _r(rng.uniform(0.01, 0.04)),
        "sway_period_s": _r(rng.uniform(1.5, 4.0), 2),
        "zoom": [_r(rng.uniform(0.85, 1.0)), _r(rng.uniform(1.0, 1.25))],
        "roll_deg": _r(rng.uniform(-12, 12), 1),
        "roll_sway_deg": _r(rng.uniform(1, 6), 1),
        "base_yaw_deg": _r(rng.uniform(-10, 10), 1),
        "base_pitch_deg": _r(rng.uniform(-10, 10), 1),
        "tremor": _r(rng.uniform(0.002, 0.008), 4),
        "phase": _r(rng.uniform(0, 2 * math.pi)),
        "hand": rng.random() < 0.7,
        "hand_tone": [
            _r(rng.uniform(lo, hi), 1) for lo, hi in ((120, 170), (150, 190), (190, 230))
        ],
        "hand_at": _r(rng.uniform(0.2, 0.8)),
    }


def _victim(
    rng: random.Random, faces_dir: Path, photos: Sequence[str]
) -> tuple[str, str, dict[str, Any]]:
    """A photo the attacker holds, whose face it is and the victim's reference photo
    (another photo of the same person where the set has one: an ID portrait is never the
    photo an attacker finds online)."""
    photo = rng.choice(list(photos))
    identity = photo.split("/")[1]
    others = [p for p in _photos_of(faces_dir, identity, mit_only=True) if p in photos]
    others = [p for p in others if p != photo]
    reference = rng.choice(others) if others else photo
    return photo, identity, {"photo": reference, "identity": identity}


def _attack_challenge(rng: random.Random) -> tuple[str, ...]:
    """A challenge as the service would draw it: 2-3 distinct actions, any order."""
    return tuple(rng.sample(list(ACTIONS), rng.randint(2, 3)))


def _still_plan(seed: int, index: int, mode: Mode, faces_dir: Path) -> Row:
    kind = "still_photo"
    rng = _rng(seed, kind, index)
    photo, identity, reference = _victim(rng, faces_dir, ATTACK_PHOTOS)
    frame = _attack_frame(rng, mode)
    challenge = _attack_challenge(rng)
    params = {
        "frame": frame,
        "photo": photo,
        "print": {
            "face_widths": _r(rng.uniform(2.2, 3.4), 2),
            "aspect": _r(rng.uniform(1.15, 1.45), 2),
            "border": _r(rng.choice([0.0, rng.uniform(0.03, 0.07)]), 3),
            "face_fraction": _r(rng.uniform(0.22, 0.4)),
            "gloss": _r(rng.uniform(0.0, 0.35)),
            "toner": _r(rng.uniform(0.85, 1.0)),
        },
        "motion": _motion(rng),
        "mimic": _mimic(rng, challenge, frame["duration"]),
    }
    return _attack_row(kind, index, frame, challenge, reference, identity, params)


def _id_plan(seed: int, index: int, mode: Mode, _faces_dir: Path) -> Row:
    kind = "id_portrait"
    rng = _rng(seed, kind, index)
    photo = rng.choice(list(ATTACK_PHOTOS))
    identity = photo.split("/")[1]
    # The attacker holds the victim's card: the order's reference is its portrait.
    reference = {"photo": photo, "identity": identity}
    frame = _attack_frame(rng, mode)
    challenge = _attack_challenge(rng)
    params = {
        "frame": frame,
        "photo": photo,
        "card_identity_seed": rng.getrandbits(32),
        # Card width in frame widths: close to the lens so the portrait is big.
        "card_width": _r(rng.uniform(1.0, 1.8)),
        "motion": _motion(rng),
        "mimic": _mimic(rng, challenge, frame["duration"]),
    }
    return _attack_row(kind, index, frame, challenge, reference, identity, params)


def _screen_params(rng: random.Random) -> dict[str, Any]:
    return {
        "screen_px": rng.choice([150, 180, 220]),  # short side, in screen pixels
        "subpixels": 3,
        "bezel": _r(rng.uniform(0.03, 0.08)),
        "cast_bgr": [
            _r(rng.uniform(lo, hi)) for lo, hi in ((1.0, 1.15), (0.95, 1.05), (0.82, 1.0))
        ],
        "black_level": _r(rng.uniform(8, 30), 1),
        "contrast": _r(rng.uniform(0.75, 0.95)),
        "moire_period_px": _r(rng.uniform(6, 16), 2),
        "moire_depth": _r(rng.uniform(0.04, 0.12)),
        "moire_angle": _r(rng.uniform(0, math.pi)),
        "refresh_bands": _r(rng.uniform(1.0, 3.0), 2),
        "refresh_speed": _r(rng.uniform(0.3, 1.5), 2),
        "refresh_depth": _r(rng.uniform(0.03, 0.1)),
        "reflection": _r(rng.uniform(0.03, 0.15)),
        "fill": _r(rng.uniform(0.55, 0.85)),  # screen height in frame heights
    }


def _screen_plan(seed: int, index: int, mode: Mode, faces_dir: Path) -> Row:
    kind = "screen_replay"
    rng = _rng(seed, kind, index)
    frame = _attack_frame(rng, mode)
    params: dict[str, Any] = {"frame": frame, "screen": _screen_params(rng)}
    if rng.random() < 0.5:
        # A genuine clip replayed: it performs the actions it is asked for.
        source = rng.choice(mode.sources)
        start, end, spans = _pick_window(rng, source, mode.duration)
        look = _look(rng, source.size, mode)
        if look["flip"]:
            spans = mirrored(spans)
        challenge = challenge_for(spans, rng)
        # The screen shows the clip at the camera's frame rate, from start to end.
        look["fps"] = frame["fps"]
        frame["duration"] = _r(frame_count(start, end, float(frame["fps"])) / frame["fps"], 3)
        params.update(content="clip", look=look, motion=_motion(rng), mimic=[])
        params["motion"]["zoom"] = [1.0, _r(rng.uniform(1.0, 1.08))]
        # Played zoomed on the face, the screen close to the lens.
        params["crop_face_widths"] = _r(rng.uniform(1.8, 2.8))
        params["screen"]["fill"] = _r(rng.uniform(0.7, 0.95))
        row = _attack_row(
            kind,
            index,
            frame,
            challenge,
            _reference_for(source, start, end),
            source.identity or f"{source.name}_subject",
            params,
        )
        row["actions"] = [s.to_json() for s in spans]
        row["source"] = _source_json(source, [(start, end, False)])
        return row
    photo, identity, reference = _victim(rng, faces_dir, ATTACK_PHOTOS)
    challenge = _attack_challenge(rng)
    params.update(
        content="photo",
        photo=photo,
        motion=_motion(rng),
        mimic=_mimic(rng, challenge, frame["duration"]),
    )
    return _attack_row(kind, index, frame, challenge, reference, identity, params)


def _two_faces_plan(seed: int, index: int, mode: Mode, faces_dir: Path) -> Row:
    row = _genuine_plan(seed, index, mode, kind="two_faces")
    rng = _rng(seed, "two_faces", index, "second")
    second = rng.choice(_other_people_photos(faces_dir, row["face_identity"], mit_only=True))
    row["params"]["second_face"] = {
        "photo": second,
        "identity": second.split("/")[1],
        "relative_width": _r(rng.uniform(0.7, 1.0)),
        "side": rng.choice(["left", "right"]),
        "dy": _r(rng.uniform(-0.15, 0.15)),
        "drift_px": _r(rng.uniform(1, 6), 1),
        "drift_period_s": _r(rng.uniform(1.5, 4), 2),
        "brightness": _r(rng.uniform(0.85, 1.1)),
    }
    return row


def _attack_row(
    kind: str,
    index: int,
    frame: dict[str, Any],
    challenge: Sequence[str],
    reference: dict[str, Any],
    identity: str,
    params: dict[str, Any],
) -> Row:
    return {
        "id": f"{kind}_{index:03d}",
        "kind": kind,
        "label": "attack",
        "path": f"clips/{kind}_{index:03d}.{_ext(frame['codec'])}",
        "challenge": list(challenge),
        "reference": reference,
        "face_identity": identity,
        "actions": [],
        "source": None,
        "params": params,
        "expected_outcome": "rejected",
        "expected_reasons": list(EXPECTED_REASONS[kind]),
    }


def _other_person_rows(
    seed: int, count: int, genuine: Sequence[Row], faces_dir: Path, mode: Mode
) -> list[Row]:
    """Genuine clips checked against another person's photo (no new video; a clip is
    reused with another photo when there are more rows than genuine clips)."""
    kind = "other_person"
    order = list(genuine)
    _rng(seed, kind, "order").shuffle(order)
    rows: list[Row] = []
    for index in range(count if order else 0):
        base = order[index % len(order)]
        photo = _rng(seed, kind, index).choice(
            _other_people_photos(faces_dir, base["face_identity"], mit_only=mode.sample)
        )
        rows.append(
            {
                **{k: base[k] for k in ("path", "challenge", "face_identity", "actions")},
                **{k: base[k] for k in ("source", "params")},
                "id": f"{kind}_{index:03d}",
                "kind": kind,
                "label": "attack",
                "uses": base["id"],
                "reference": {"photo": photo, "identity": photo.split("/")[1]},
                "expected_outcome": "rejected",
                "expected_reasons": list(EXPECTED_REASONS[kind]),
            }
        )
    return rows


def row_actions(row: Row) -> tuple[ActionSpan, ...]:
    return tuple(
        ActionSpan(a["action"], float(a["t_start"]), float(a["t_end"])) for a in row["actions"]
    )


def plan(
    *, seed: int, count_per_kind: int, sample: bool = False, faces_dir: Path | None = None
) -> list[Row]:
    """Every row of the set with every parameter drawn; no pixel is made.

    ``count_per_kind`` rows of every attack kind and twice as many genuine clips.
    """
    faces = faces_dir or default_faces_dir()
    mode = SAMPLE_MODE if sample else BENCH_MODE
    genuine = [_genuine_plan(seed, i, mode) for i in range(2 * count_per_kind)]
    rows = list(genuine)
    makers: dict[str, Callable[[int, int, Mode, Path], Row]] = {
        "still_photo": _still_plan,
        "id_portrait": _id_plan,
        "screen_replay": _screen_plan,
        "two_faces": _two_faces_plan,
        "wrong_order": lambda s, i, m, _f: _wrong_order_plan(s, i, m),
    }
    for kind in ATTACK_KINDS:
        if kind == "other_person":
            rows.extend(_other_person_rows(seed, count_per_kind, genuine, faces, mode))
        else:
            rows.extend(makers[kind](seed, i, mode, faces) for i in range(count_per_kind))
    for row in rows:
        row["seed"] = seed
        row.setdefault("uses", None)
    return rows


# --- pixels ------------------------------------------------------------------------------


def _read_clip(path: Path, start: float, end: float, fps: float) -> Iterator[Image8]:
    """Frames of ``path`` at ``start, start + 1/fps, ...`` before ``end`` (the source
    frame shown at each instant)."""
    cap = cv2.VideoCapture(str(path))
    try:
        src_fps = float(cap.get(cv2.CAP_PROP_FPS)) or 25.0
        wanted = [start + k / fps for k in range(max(1, math.floor((end - start) * fps)))]
        index, current = -1, None
        for t in wanted:
            target = math.floor(t * src_fps + 1e-6)
            while index < target:
                ok, image = cap.read()
                if not ok:
                    return
                index, current = index + 1, image
            if current is not None:
                yield np.asarray(current, np.uint8)
    finally:
        cap.release()


def read_frame_at(path: Path, t: float) -> Image8:
    """The frame of ``path`` shown at ``t`` seconds (BGR)."""
    for image in _read_clip(path, t, t + 1.0, 1.0):
        return image
    raise ValueError(f"{path} has no frame at {t} s")


def _geometry(image: Image8, look: dict[str, Any]) -> Image8:
    """Crop (zoom about a centre), flip and resize a source frame as ``look`` says."""
    h, w = image.shape[:2]
    zoom = float(look["zoom"])
    cw, ch = w / zoom, h / zoom
    cx = float(look["crop_centre"][0]) * w
    cy = float(look["crop_centre"][1]) * h
    x0 = min(max(0.0, cx - cw / 2), w - cw)
    y0 = min(max(0.0, cy - ch / 2), h - ch)
    out_w, out_h = (int(v) for v in look["size"])
    sx, sy = out_w / cw, out_h / ch
    matrix = np.array([[sx, 0, -x0 * sx], [0, sy, -y0 * sy]], np.float64)
    if look["flip"]:
        matrix = np.array([[-1, 0, out_w - 1], [0, 1, 0]], np.float64) @ np.vstack(
            [matrix, [0, 0, 1]]
        )
    interp = cv2.INTER_AREA if sx < 1 else cv2.INTER_LINEAR
    return np.asarray(
        cv2.warpAffine(image, matrix, (out_w, out_h), flags=interp, borderMode=cv2.BORDER_REFLECT),
        np.uint8,
    )


def _tone_lut(gain: float, gamma: float) -> npt.NDArray[np.uint8]:
    x = np.arange(256, dtype=np.float64) / 255.0
    return np.asarray(np.clip(255.0 * gain * x**gamma, 0, 255).round(), np.uint8)


def _photometric(image: Image8, look: dict[str, Any], rng: random.Random) -> Image8:
    toned = np.asarray(cv2.LUT(image, _tone_lut(float(look["gain"]), float(look["gamma"]))))
    sigma = float(look["noise_sigma"])
    if sigma <= 0:
        return np.asarray(toned, np.uint8)
    return _to_uint8(_sensor_noise(np.asarray(toned, np.uint8), rng, sigma))


def _write(path: Path, frames: Iterable[Image8], fps: float, codec: str) -> dict[str, Any]:
    """Encode ``frames`` (BGR, one size) with OpenCV's FFmpeg writer; returns facts."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer: cv2.VideoWriter | None = None
    count = 0
    size = (0, 0)
    try:
        for image in frames:
            if writer is None:
                size = (int(image.shape[1]), int(image.shape[0]))
                writer = cv2.VideoWriter(
                    str(path), cv2.CAP_FFMPEG, cv2.VideoWriter.fourcc(*codec), fps, size
                )
                if not writer.isOpened():
                    raise RuntimeError(f"cannot encode {codec} to {path}")
            writer.write(np.ascontiguousarray(image))
            count += 1
    finally:
        if writer is not None:
            writer.release()
    if count == 0:
        raise RuntimeError(f"no frame for {path}")
    return {"frames": count, "size": list(size), "seconds": _r(count / fps, 2)}


def _source_frames(row: Row, faces_dir: Path, fps: float) -> Iterator[Image8]:
    """The frames of a row's real clip at ``fps``: each part in turn (mirrored where it
    says so), cropped, flipped and scaled as its ``look`` says (before light and noise)."""
    look = row["params"]["look"]
    src = row["source"]
    for part in src["parts"]:
        start, end = float(part["start"]), float(part["end"])
        for image in _read_clip(faces_dir / src["video"], start, end, fps):
            yield _geometry(np.asarray(cv2.flip(image, 1)) if part["mirrored"] else image, look)


def _genuine_frames(row: Row, faces_dir: Path) -> Iterator[Image8]:
    return _source_frames(row, faces_dir, float(row["params"]["look"]["fps"]))


def _render_genuine(row: Row, faces_dir: Path, out_dir: Path) -> dict[str, Any]:
    look = row["params"]["look"]
    rng = _rng(row["seed"], row["id"], "noise")
    frames = (_photometric(f, look, rng) for f in _genuine_frames(row, faces_dir))
    return _write(out_dir / row["path"], frames, float(look["fps"]), look["codec"])


# Background, motion and camera of the rendered attacks.


def _room(seed: int, width: int, height: int) -> FloatImage:
    """An out-of-focus indoor background: a wall, a door or shelf, a picture, a lamp."""
    gen = np.random.default_rng(seed)
    wall = gen.uniform(90, 220, size=3).astype(np.float32) * np.array(
        [gen.uniform(0.85, 1.0), gen.uniform(0.9, 1.0), 1.0], np.float32
    )
    ys = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    image = wall * (0.8 + 0.3 * ys[::-1] * gen.uniform(0.3, 1.0))
    image = image * np.ones((1, width, 1), np.float32)
    image += (_smooth_noise(gen, width, height, 60) * 6)[..., None]
    for _ in range(int(gen.integers(2, 6))):
        x0, y0 = int(gen.integers(-width // 4, width)), int(gen.integers(-height // 4, height))
        w, h = int(gen.integers(width // 8, width // 2)), int(gen.integers(height // 6, height))
        colour = tuple(float(c) for c in gen.uniform(20, 240, size=3))
        cv2.rectangle(image, (x0, y0), (x0 + w, y0 + h), colour, -1)
    if gen.random() < 0.5:  # a lamp or a window: a bright blob
        centre = (int(gen.integers(0, width)), int(gen.integers(0, height // 2)))
        cv2.circle(image, centre, int(gen.integers(width // 12, width // 5)), (245, 245, 240), -1)
    sigma = float(gen.uniform(6, 14)) * width / 480
    return np.asarray(cv2.GaussianBlur(image, (0, 0), sigmaX=sigma), np.float32)


def _bump(t: float, t0: float, t1: float) -> float:
    """0 outside ``[t0, t1]``, a raised cosine up to 1 in the middle."""
    if t <= t0 or t >= t1:
        return 0.0
    return 0.5 - 0.5 * math.cos(2 * math.pi * (t - t0) / (t1 - t0))


@dataclass(frozen=True, slots=True)
class Pose:
    """Where a hand-held plane is at one instant (frame pixels, degrees)."""

    cx: float
    cy: float
    scale: float
    yaw: float
    pitch: float
    roll: float


def _pose_at(
    t: float, duration: float, motion: dict[str, Any], mimic: Sequence[dict[str, Any]],
    frame_wh: tuple[int, int], tremor: tuple[float, float],
) -> Pose:  # fmt: skip
    fw, fh = frame_wh
    u = t / max(duration, 1e-6)
    phase = float(motion["phase"])
    period = float(motion["sway_period_s"])
    sway = float(motion["sway"])
    wave = math.sin(2 * math.pi * t / period + phase)
    wave2 = math.sin(2 * math.pi * t / (period * 1.7) + 2 * phase)
    cx = (float(motion["centre"][0]) + float(motion["pan"][0]) * u + sway * wave) * fw
    cy = (float(motion["centre"][1]) + float(motion["pan"][1]) * u + sway * 0.6 * wave2) * fh
    z0, z1 = (float(z) for z in motion["zoom"])
    scale = z0 + (z1 - z0) * (0.5 - 0.5 * math.cos(math.pi * u))
    yaw = float(motion["base_yaw_deg"]) + 3 * wave2
    pitch = float(motion["base_pitch_deg"]) + 2 * wave
    roll = float(motion["roll_deg"]) + float(motion["roll_sway_deg"]) * wave2
    for move in mimic:
        b = _bump(t, float(move["t_start"]), float(move["t_end"]))
        if "yaw_deg" in move:
            # Image-space: the subject's left is the image's right (unmirrored).
            yaw += -float(move["yaw_deg"]) * b
        elif "pitch_deg" in move:
            pitch += float(move["pitch_deg"]) * b
        elif b > 0:
            roll += float(move["shake_deg"]) * math.sin(2 * math.pi * float(move["shake_hz"]) * t)
    return Pose(cx + tremor[0] * fw, cy + tremor[1] * fh, scale, yaw, pitch, roll)


def _tremor(rng: random.Random, n: int, amplitude: float) -> list[tuple[float, float]]:
    """Hand tremor: smoothed random walk, ``amplitude`` in frame fractions."""
    gen = np.random.default_rng(rng.getrandbits(64))
    raw = gen.normal(0, 1, size=(n + 6, 2))
    kernel = np.ones(5) / 5
    smooth = np.stack([np.convolve(raw[:, k], kernel, mode="same") for k in range(2)], axis=1)
    return [(float(x) * amplitude, float(y) * amplitude) for x, y in smooth[3 : 3 + n]]


def _plane_quad(
    surface_wh: tuple[int, int],
    anchor: tuple[float, float],
    pixels_per_unit: float,
    pose: Pose,
    frame_wh: tuple[int, int],
) -> npt.NDArray[np.float64]:
    """Corners of a flat ``surface`` turned by ``pose`` about ``anchor`` (surface pixels),
    seen by a pinhole camera with a phone's field of view (about 65 degrees)."""
    sw, sh = surface_wh
    ax, ay = anchor
    s = pixels_per_unit * pose.scale
    corners = np.array(
        [[-ax, -ay, 0], [sw - ax, -ay, 0], [sw - ax, sh - ay, 0], [-ax, sh - ay, 0]], np.float64
    )
    corners *= s
    y, p, r = (math.radians(v) for v in (pose.yaw, pose.pitch, pose.roll))
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    focal = 0.8 * max(frame_wh)
    cam = corners @ (rz @ ry @ rx).T
    depth = focal + cam[:, 2]
    return np.stack(
        [focal * cam[:, 0] / depth + pose.cx, focal * cam[:, 1] / depth + pose.cy], axis=1
    )


def _hand(frame: FloatImage, quad: npt.NDArray[np.float64], motion: dict[str, Any]) -> None:
    """A thumb over the lower edge of the held object and the hand below it."""
    if not motion["hand"]:
        return
    fh, fw = frame.shape[:2]
    bl, br = quad[3], quad[2]
    t = float(motion["hand_at"])
    edge = bl + (br - bl) * t
    width = float(np.linalg.norm(br - bl))
    inward = quad.mean(axis=0) - (bl + br) / 2
    inward /= max(1e-6, float(np.linalg.norm(inward)))
    mask = np.zeros((fh, fw), np.float32)
    thumb = edge + inward * width * 0.04
    angle = math.degrees(math.atan2(float(br[1] - bl[1]), float(br[0] - bl[0])))
    cv2.ellipse(
        mask,
        (round(float(thumb[0])), round(float(thumb[1]))),
        (max(2, round(width * 0.05)), max(2, round(width * 0.09))),
        angle,
        0,
        360,
        1.0,
        -1,
    )
    palm = edge - inward * width * 0.16
    cv2.ellipse(
        mask,
        (round(float(palm[0])), round(float(palm[1]))),
        (max(3, round(width * 0.14)), max(3, round(width * 0.2))),
        angle,
        0,
        360,
        1.0,
        -1,
    )
    soft = np.asarray(cv2.GaussianBlur(mask, (0, 0), sigmaX=max(1.0, width * 0.01)), np.float32)
    tone = np.array(motion["hand_tone"], np.float32)
    m = soft[..., None]
    frame[:] = frame * (1 - m) + tone * m


class _Camera:
    """The phone: shakes a little, softens, flickers in exposure and adds sensor noise."""

    def __init__(self, row: Row) -> None:
        self.frame = row["params"]["frame"]
        self.rng = _rng(row["seed"], row["id"], "camera")
        w, h = (int(v) for v in self.frame["size"])
        self.size = (w, h)
        self.room = _room(int(self.frame["room_seed"]), w + 16, h + 16)
        n = self.count
        self.shake = _tremor(self.rng, n, float(self.frame["camera_shake_px"]) / max(w, h))
        self.flicker_phase = self.rng.uniform(0, 2 * math.pi)

    @property
    def count(self) -> int:
        return max(1, math.floor(float(self.frame["duration"]) * float(self.frame["fps"])))

    @property
    def fps(self) -> float:
        return float(self.frame["fps"])

    def background(self, k: int) -> FloatImage:
        w, h = self.size
        dx, dy = self.shake[k]
        x0 = min(16, max(0, round(8 + dx * max(w, h))))
        y0 = min(16, max(0, round(8 + dy * max(w, h))))
        return np.array(self.room[y0 : y0 + h, x0 : x0 + w], np.float32)

    def finish(self, frame: FloatImage, k: int) -> Image8:
        t = k / self.fps
        gain = 1.0 + float(self.frame["exposure_flicker"]) * math.sin(
            2 * math.pi * 0.7 * t + self.flicker_phase
        )
        frame *= gain
        soft = cv2.GaussianBlur(_to_uint8(frame), (0, 0), sigmaX=float(self.frame["blur_sigma"]))
        noisy = _sensor_noise(
            np.asarray(soft, np.uint8), self.rng, float(self.frame["noise_sigma"])
        )
        return _to_uint8(noisy)


@cache
def _photo_and_face(path: Path) -> tuple[Image8, tuple[float, float, float, float]]:
    """A face photo (BGR) and its largest face box (top, right, bottom, left)."""
    rgb = load_rgb(path)
    return np.ascontiguousarray(rgb[..., ::-1]), _face_box(rgb)


def _print_surface(
    bgr: Image8, box: tuple[float, float, float, float], spec: dict[str, Any], target_face: float
) -> tuple[Image8, tuple[float, float], float]:
    """A photo print around the face: cropped, toned, with a white border. Returns the
    print (at about 1.5x the pixels it covers in the frame), the face centre in it and
    the face's width in it."""
    top, right, bottom, left = box
    face_w = right - left
    crop_w = face_w * float(spec["face_widths"])
    crop_h = crop_w * float(spec["aspect"])
    cx, cy = (left + right) / 2, (top + bottom) / 2
    x0, y0 = cx - crop_w / 2, cy - crop_h * 0.42
    out_w = max(64, round(target_face * float(spec["face_widths"]) * 1.5))
    s = out_w / crop_w
    out_h = round(crop_h * s)
    matrix = np.array([[s, 0, -x0 * s], [0, s, -y0 * s]], np.float64)
    crop = cv2.warpAffine(
        bgr, matrix, (out_w, out_h), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE
    )
    toner = float(spec["toner"])
    toned = crop.astype(np.float32) * toner + 255 * (1 - toner) * 0.3
    border = round(float(spec["border"]) * out_w)
    if border:
        sheet = np.full((out_h + 2 * border, out_w + 2 * border, 3), 240.0, np.float32)
        sheet[border:-border, border:-border] = toned
        toned = sheet
    anchor = ((cx - x0) * s + border, (cy - y0) * s + border)
    return np.clip(toned, 0, 255).astype(np.uint8), anchor, face_w * s


def _gloss(surface: Image8, pose: Pose, strength: float) -> Image8:
    """A soft specular sheen on a glossy print or a laminated card, sliding as it turns."""
    if strength <= 0:
        return surface
    h, w = surface.shape[:2]
    gx = 0.5 + 0.9 * math.sin(math.radians(pose.yaw))
    gy = 0.3 + 0.9 * math.sin(math.radians(pose.pitch))
    xs = (np.arange(w, dtype=np.float32)[None, :] / w - gx) / 0.35
    ys = (np.arange(h, dtype=np.float32)[:, None] / h - gy) / 0.35
    spot = np.exp(-(xs * xs + ys * ys)) * strength
    out = surface.astype(np.float32)
    out += (255 - out) * spot[..., None]
    return np.clip(out, 0, 255).astype(np.uint8)


def _render_plane_attack(
    row: Row,
    surface_at: Callable[[int, Pose], Image8],
    anchor: tuple[float, float],
    pixels_per_unit: float,
    rounded: bool,
    out_dir: Path,
) -> dict[str, Any]:
    """A flat object (a print, a card, a screen) moved in front of the camera."""
    camera = _Camera(row)
    params = row["params"]
    motion = params["motion"]
    mimic = params.get("mimic", [])
    tremor = _tremor(_rng(row["seed"], row["id"], "tremor"), camera.count, float(motion["tremor"]))
    duration = float(params["frame"]["duration"])

    def frames() -> Iterator[Image8]:
        for k in range(camera.count):
            pose = _pose_at(k / camera.fps, duration, motion, mimic, camera.size, tremor[k])
            surface = surface_at(k, pose)
            sh, sw = surface.shape[:2]
            quad = _plane_quad((sw, sh), anchor, pixels_per_unit, pose, camera.size)
            frame = camera.background(k)
            alpha = card_alpha(sw, sh) if rounded else np.ones((sh, sw), np.float32)
            _composite(frame, surface, alpha, quad)
            _hand(frame, quad, motion)
            yield camera.finish(frame, k)

    return _write(out_dir / row["path"], frames(), camera.fps, params["frame"]["codec"])


def _render_still(row: Row, faces_dir: Path, out_dir: Path) -> dict[str, Any]:
    params = row["params"]
    bgr, box = _photo_and_face(faces_dir / params["photo"])
    w, h = params["frame"]["size"]
    target_face = float(params["print"]["face_fraction"]) * min(w, h)
    surface, anchor, face_px = _print_surface(bgr, box, params["print"], target_face)
    gloss = float(params["print"]["gloss"])
    return _render_plane_attack(
        row,
        lambda _k, pose: _gloss(surface, pose, gloss),
        anchor,
        target_face / face_px,
        False,
        out_dir,
    )


def _render_id(row: Row, faces_dir: Path, out_dir: Path) -> dict[str, Any]:
    from services.synth.selfie import render_card_front
    from vision.layout import CANONICAL_HEIGHT, CANONICAL_WIDTH, PORTRAIT_PHOTO

    params = row["params"]
    identity = generate_identity(_rng(row["seed"], row["id"], "identity"))
    card = render_card_front(
        identity, faces_dir, params["photo"], _rng(row["seed"], row["id"], "card")
    )
    w, _h = params["frame"]["size"]
    card_px = float(params["card_width"]) * w
    surface_w = min(CANONICAL_WIDTH, round(card_px * 1.5))
    s = surface_w / CANONICAL_WIDTH
    surface = np.asarray(
        cv2.resize(card, (surface_w, round(CANONICAL_HEIGHT * s)), interpolation=cv2.INTER_AREA),
        np.uint8,
    )
    x0, y0, x1, y1 = PORTRAIT_PHOTO.to_pixels(CANONICAL_WIDTH, CANONICAL_HEIGHT)
    anchor = ((x0 + x1) / 2 * s, (y0 + y1) / 2 * s)
    return _render_plane_attack(
        row, lambda _k, pose: _gloss(surface, pose, 0.2), anchor, card_px / surface_w, True, out_dir
    )


class _Screen:
    """A phone or monitor showing ``content`` frames: sub-pixel stripes, moire, refresh
    bands, colour cast, raised blacks, a reflection and a bezel.

    The screen is drawn at sub-pixel resolution (``subpixels`` camera-facing samples per
    screen pixel): warping it into the camera frame then aliases the stripes as a real
    camera does. Stripes, moire and reflection are fixed per clip; the refresh bands roll.
    """

    def __init__(self, spec: dict[str, Any], aspect: float, rng: random.Random) -> None:
        self.spec = spec
        short = int(spec["screen_px"])
        # aspect = width / height of the content shown full-screen
        if aspect >= 1:
            self.sw, self.sh = round(short * aspect), short
        else:
            self.sw, self.sh = short, round(short / aspect)
        sub = int(spec["subpixels"])
        self.sub = sub
        big_w, big_h = self.sw * sub, self.sh * sub
        cell = np.full((sub, sub, 3), 0.35, np.float32)
        for channel in range(3):  # BGR: R stripe on the left, B on the right
            cell[:, sub - 1 - channel, channel] = 1.0
        cell[sub - 1, :, :] *= 0.5
        cell /= cell.mean(axis=(0, 1), keepdims=True)
        ys, xs = np.mgrid[0:big_h, 0:big_w].astype(np.float32)
        angle = float(spec["moire_angle"])
        wobble = np.sin(ys / rng.uniform(60, 160)) * rng.uniform(2, 6)
        phase = (xs * math.cos(angle) + ys * math.sin(angle) + wobble) * (
            2 * math.pi / float(spec["moire_period_px"])
        )
        moire = 1 + float(spec["moire_depth"]) * np.sin(phase)
        self.pattern = np.asarray(
            np.tile(cell, (self.sh, self.sw, 1)) * moire[..., None], np.float32
        )
        gen = np.random.default_rng(rng.getrandbits(64))
        sheen = _smooth_noise(gen, big_w, big_h, max(big_w, big_h) // 3)
        ramp = np.linspace(0, 1, big_w, dtype=np.float32)[None, :]
        glare = (0.5 + 0.5 * sheen) * ramp * float(spec["reflection"]) * 255
        self.reflection = np.asarray(np.repeat(glare[..., None], 3, axis=2), np.float32)
        self.cast = np.array(spec["cast_bgr"], np.float32) * float(spec["contrast"])
        self.black = np.array(spec["cast_bgr"], np.float32) * float(spec["black_level"])
        self.rows = (np.arange(self.sh, dtype=np.float32) + 0.5) / self.sh
        self.bezel = max(2, round(float(spec["bezel"]) * big_w))
        b = self.bezel
        self.device = np.full((big_h + 2 * b, big_w + 2 * b, 3), rng.uniform(8, 30), np.float32)

    def show(self, content: Image8, t: float) -> Image8:
        """The screen photographed head-on (sub-pixel resolution), content letterboxed."""
        spec = self.spec
        h, w = content.shape[:2]
        s = min(self.sw / w, self.sh / h)
        size = (max(1, round(w * s)), max(1, round(h * s)))
        fitted = np.asarray(cv2.resize(content, size, interpolation=cv2.INTER_AREA), np.float32)
        screen = np.zeros((self.sh, self.sw, 3), np.float32)
        oy, ox = (self.sh - size[1]) // 2, (self.sw - size[0]) // 2
        screen[oy : oy + size[1], ox : ox + size[0]] = fitted
        bands = float(spec["refresh_bands"]) * self.rows - t * float(spec["refresh_speed"])
        band = 1 - float(spec["refresh_depth"]) * (0.5 + 0.5 * np.sin(2 * math.pi * bands))
        screen = screen * self.cast * band[:, None, None] + self.black
        big = np.asarray(
            cv2.resize(
                screen, (self.sw * self.sub, self.sh * self.sub), interpolation=cv2.INTER_NEAREST
            ),
            np.float32,
        )
        cv2.multiply(big, self.pattern, dst=big)
        cv2.add(big, self.reflection, dst=big)
        b = self.bezel
        self.device[b:-b, b:-b] = big
        return _to_uint8(self.device)


def _render_screen(row: Row, faces_dir: Path, out_dir: Path) -> dict[str, Any]:
    params = row["params"]
    rng = _rng(row["seed"], row["id"], "screen")
    fw, fh = params["frame"]["size"]
    camera_fps = float(params["frame"]["fps"])
    contents: list[Image8]
    if params["content"] == "clip":
        # The attacker plays the clip full-screen, zoomed on the face (portrait, 3:4).
        probes = list(_source_frames(row, faces_dir, 1.0))
        h, w = probes[0].shape[:2]
        top, right, bottom, left = _main_face(probes) or (h * 0.2, w * 0.65, h * 0.6, w * 0.35)
        crop_w = min(w, h * 0.75, (right - left) * float(params["crop_face_widths"]))
        crop_h = crop_w / 0.75
        x0 = min(max(0.0, (left + right - crop_w) / 2), w - crop_w)
        y0 = min(max(0.0, (top + bottom) / 2 - crop_h * 0.45), h - crop_h)
        box = (round(x0), round(y0), round(x0 + crop_w), round(y0 + crop_h))
        contents = [f[box[1] : box[3], box[0] : box[2]].copy()
                    for f in _source_frames(row, faces_dir, camera_fps)]  # fmt: skip
    else:
        bgr, box = _photo_and_face(faces_dir / params["photo"])
        spec = {"face_widths": 2.6, "aspect": 1.5, "border": 0.0, "toner": 1.0}
        surface, _anchor, _face = _print_surface(bgr, box, spec, 0.3 * fw)
        contents = [surface]
    first = contents[0]
    screen = _Screen(params["screen"], first.shape[1] / first.shape[0], rng)
    device_h = screen.sh * screen.sub + 2 * screen.bezel
    device_w = screen.sw * screen.sub + 2 * screen.bezel
    pixels_per_unit = float(params["screen"]["fill"]) * min(fh, fw * device_h / device_w) / device_h
    return _render_plane_attack(
        row,
        lambda k, _pose: screen.show(contents[min(k, len(contents) - 1)], k / camera_fps),
        (device_w / 2, device_h / 2),
        pixels_per_unit,
        True,
        out_dir,
    )


def _main_face(frames: Sequence[Image8]) -> tuple[float, float, float, float] | None:
    """Union (top, right, bottom, left) of the largest face found in each frame."""
    from vision.face import detect_faces

    boxes = []
    for image in frames:
        found = detect_faces(image)
        if found:
            b = max(found, key=lambda b: b.area)
            boxes.append((b.top, b.right, b.bottom, b.left))
    if not boxes:
        return None
    arr = np.array(boxes, np.float64)
    return (
        float(arr[:, 0].min()),
        float(arr[:, 1].max()),
        float(arr[:, 2].max()),
        float(arr[:, 3].min()),
    )


def _head_mask(
    shape: tuple[int, int], centre: tuple[float, float], face_w: float, face_h: float
) -> FloatImage:
    """A soft head-and-shoulders mask around a face centre (to paste a second person)."""
    h, w = shape
    cx, cy = centre
    mask = np.zeros((h, w), np.float32)
    cv2.ellipse(mask, (round(cx), round(cy - 0.1 * face_h)),
                (round(0.8 * face_w), round(1.05 * face_h)), 0, 0, 360, 1.0, -1)  # fmt: skip
    cv2.ellipse(mask, (round(cx), round(cy + 2.0 * face_h)),
                (round(1.6 * face_w), round(1.2 * face_h)), 0, 0, 360, 1.0, -1)  # fmt: skip
    return np.asarray(cv2.GaussianBlur(mask, (0, 0), sigmaX=max(1.0, 0.08 * face_w)), np.float32)


def _render_two_faces(row: Row, faces_dir: Path, out_dir: Path) -> dict[str, Any]:
    params = row["params"]
    look = params["look"]
    spec = params["second_face"]
    fps = float(look["fps"])
    probes = list(_source_frames(row, faces_dir, 1.0))
    w, h = (int(v) for v in look["size"])
    main = _main_face(probes) or (h * 0.25, w * 0.65, h * 0.6, w * 0.35)
    top, right, bottom, left = main
    main_w, main_h = right - left, bottom - top
    second_w = float(spec["relative_width"]) * main_w
    need = 1.35 * second_w
    side = spec["side"]
    rooms = {"left": left, "right": w - right}
    if rooms[side] < need and rooms[_other(side)] >= need:
        side = _other(side)
    zoom = 1.0
    if rooms[side] < need:
        # Zoom out, anchored at the far edge, until the second face fits.
        far = w - left if side == "left" else right
        zoom = w / (far + need)
    # Content transform: x' = zoom * x + ox, y' = zoom * y + oy.
    ox = w * (1 - zoom) if side == "left" else 0.0
    oy = h * (1 - zoom) / 2
    m_top, m_bottom = top * zoom + oy, bottom * zoom + oy
    m_left, m_right = left * zoom + ox, right * zoom + ox
    second_w *= zoom
    gap = (m_left if side == "left" else w - m_right) / 2
    cx = gap if side == "left" else m_right + gap
    cy = (m_top + m_bottom) / 2 + float(spec["dy"]) * main_h * zoom
    bgr, box = _photo_and_face(faces_dir / spec["photo"])
    b_top, b_right, b_bottom, b_left = box
    s = second_w / max(1.0, b_right - b_left)
    fcx, fcy = (b_left + b_right) / 2, (b_top + b_bottom) / 2
    matrix = np.array([[s, 0, cx - fcx * s], [0, s, cy - fcy * s]], np.float64)
    layer = np.asarray(
        cv2.warpAffine(bgr, matrix, (w, h), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE),
        np.float32,
    )
    cover = cv2.warpAffine(np.ones(bgr.shape[:2], np.float32), matrix, (w, h), borderValue=0.0)
    mask = _head_mask((h, w), (cx, cy), second_w, (b_bottom - b_top) * s) * np.asarray(
        cover, np.float32
    )
    content_mask: FloatImage | None = None
    if zoom < 1.0:
        inner = np.zeros((h, w), np.float32)
        cv2.rectangle(inner, (round(ox), round(oy)),
                      (round(ox + w * zoom) - 1, round(oy + h * zoom) - 1), 1.0, -1)  # fmt: skip
        content_mask = np.asarray(cv2.GaussianBlur(inner, (0, 0), sigmaX=3), np.float32)
    rng = _rng(row["seed"], row["id"], "noise")
    placed = {
        "main_face_box": [_r(v, 1) for v in main],
        "zoom_out": _r(zoom),
        "side_used": side,
        "second_face_centre": [_r(cx, 1), _r(cy, 1)],
        "second_face_width": _r(second_w, 1),
    }
    state: dict[str, float] = {}

    def frames() -> Iterator[Image8]:
        for k, image in enumerate(_source_frames(row, faces_dir, fps)):
            frame = image.astype(np.float32)
            if content_mask is not None:
                backdrop = cv2.GaussianBlur(frame, (0, 0), sigmaX=25) * 0.9
                shrunk = cv2.warpAffine(
                    frame, np.array([[zoom, 0, ox], [0, zoom, oy]], np.float64), (w, h),
                    flags=cv2.INTER_AREA,
                )  # fmt: skip
                m = content_mask[..., None]
                frame = shrunk * m + backdrop * (1 - m)
            if "gain" not in state:
                around = frame[mask > 0.5].mean() if (mask > 0.5).any() else 128.0
                own = layer[mask > 0.5].mean() if (mask > 0.5).any() else 128.0
                state["gain"] = float(
                    np.clip(float(spec["brightness"]) * around / max(own, 1.0), 0.6, 1.4)
                )
            t = k / fps
            dx = float(spec["drift_px"]) * math.sin(2 * math.pi * t / float(spec["drift_period_s"]))
            shift = np.array([[1, 0, dx], [0, 1, 0.4 * dx]], np.float64)
            moved = cv2.warpAffine(layer, shift, (w, h), borderMode=cv2.BORDER_REPLICATE)
            m2 = np.asarray(cv2.warpAffine(mask, shift, (w, h)), np.float32)[..., None]
            frame = frame * (1 - m2) + moved * state["gain"] * m2
            yield _photometric(_to_uint8(np.asarray(frame, np.float32)), look, rng)

    facts = _write(out_dir / row["path"], frames(), fps, look["codec"])
    return {**facts, "placed": placed}


def _other(side: str) -> str:
    return "right" if side == "left" else "left"


_RENDERERS: Final[dict[str, Callable[[Row, Path, Path], dict[str, Any]]]] = {
    GENUINE: _render_genuine,
    "wrong_order": _render_genuine,
    "still_photo": _render_still,
    "id_portrait": _render_id,
    "screen_replay": _render_screen,
    "two_faces": _render_two_faces,
}


def render_row(row: Row, faces_dir: Path, out_dir: Path) -> dict[str, Any]:
    """Make the video of one planned row (not the pair kinds); returns frames, size."""
    return _RENDERERS[row["kind"]](row, faces_dir, out_dir)


def _render_job(job: tuple[Row, Path, Path]) -> tuple[str, dict[str, Any]]:
    row, faces_dir, out_dir = job
    return row["id"], render_row(row, faces_dir, out_dir)


def _single_thread() -> None:
    cv2.setNumThreads(1)


def write_references(rows: Sequence[Row], faces_dir: Path, out_dir: Path) -> None:
    """Write the reference frames taken from the clips themselves (``reference.file``)."""
    for row in rows:
        ref = row["reference"]
        if "file" in ref and not (out_dir / ref["file"]).is_file():
            image = read_frame_at(faces_dir / ref["frame_of"], float(ref["t"]))
            (out_dir / ref["file"]).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(out_dir / ref["file"]), image)


def generate(
    out_dir: Path,
    *,
    seed: int,
    count_per_kind: int,
    sample: bool = False,
    faces_dir: Path | None = None,
    jobs: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> list[Row]:
    """Plan, render and write the set: ``clips/*``, ``refs/*`` and ``manifest.jsonl``.

    Each manifest row: ``id``, ``kind`` (``genuine`` or an attack kind), ``label``
    (``genuine`` / ``attack``), ``path`` (the video, relative to ``out_dir``; pair kinds
    point at a genuine clip, named in ``uses``), ``challenge`` (the actions to ask, in
    order), ``reference`` (``photo`` relative to the faces folder, or ``frame_of`` /
    ``t`` / ``file`` for a frame of the clip, ``file`` relative to ``out_dir``; and
    ``identity``), ``face_identity`` (whose face the clip shows), ``actions`` (what the
    clip really performs: ``action``, ``t_start``, ``t_end`` in clip seconds),
    ``source`` (the real video and sub-clip used, or ``null``), ``params`` (every random
    choice), ``video`` (frames, size, seconds as written), ``expected_outcome``
    (``passed`` / ``rejected``) and ``expected_reasons`` (at least one of them expected).
    """
    faces = faces_dir or default_faces_dir()
    if not (faces / "videos").is_dir():
        raise FileNotFoundError(f"{faces / 'videos'} not found (set SIMGATE_SHARED_DATA)")
    rows = plan(seed=seed, count_per_kind=count_per_kind, sample=sample, faces_dir=faces)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_references(rows, faces, out_dir)
    todo = [(row, faces, out_dir) for row in rows if row["kind"] not in PAIR_KINDS]
    facts: dict[str, dict[str, Any]] = {}
    if jobs <= 1:
        for n, job in enumerate(todo, 1):
            key, value = _render_job(job)
            facts[key] = value
            if progress:
                progress(n, len(todo))
    else:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(jobs, initializer=_single_thread) as pool:
            for n, (key, value) in enumerate(pool.imap_unordered(_render_job, todo), 1):
                facts[key] = value
                if progress:
                    progress(n, len(todo))
    for row in rows:
        got = dict(facts[row["uses"] or row["id"]])
        placed = got.pop("placed", None)
        if placed is not None and row["uses"] is None:
            row["params"]["placed"] = placed
        row["video"] = got
    write_manifest(out_dir / MANIFEST_NAME, rows)
    return rows


def write_manifest(path: Path, rows: Sequence[Row]) -> None:
    lines = [json.dumps(r, ensure_ascii=False, sort_keys=True) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def read_manifest(path: Path) -> list[Row]:
    """The rows of a ``manifest.jsonl``."""
    return [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]


def reference_path(row: Row, set_dir: Path, faces_dir: Path) -> Path:
    """The reference still of a row: a photo of the faces folder or a written frame."""
    ref = row["reference"]
    if "file" in ref:
        return set_dir / str(ref["file"])
    return faces_dir / str(ref["photo"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.synth.liveness",
        description="Genuine and attack clips for the video activation check (R7).",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--seed", type=int, default=None, help=f"default 0; {SAMPLE_SEED} with --sample"
    )
    parser.add_argument(
        "--count-per-kind",
        type=int,
        default=None,
        help="rows per attack kind (genuine: twice as many); default 17, 1 with --sample",
    )
    parser.add_argument(
        "--sample",
        action="store_true",
        help=(
            "committed-sample settings: only sources whose licence allows it (the MIT "
            f"Hamilton clip, MIT photos), frames at most {SAMPLE_MAX_SIDE} px, 3-4 s, 12 fps"
        ),
    )
    parser.add_argument("--faces-dir", type=Path, default=None, help="default: <shared>/faces")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument(
        "--plan-only", action="store_true", help="print the planned rows as JSON lines"
    )
    args = parser.parse_args(argv)
    count = args.count_per_kind or (1 if args.sample else 17)
    if args.seed is None:
        args.seed = SAMPLE_SEED if args.sample else 0
    if args.plan_only:
        for row in plan(
            seed=args.seed, count_per_kind=count, sample=args.sample, faces_dir=args.faces_dir
        ):
            sys.stdout.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
        return 0
    started = time.perf_counter()

    def progress(done: int, total: int) -> None:
        sys.stderr.write(f"\rclips {done}/{total}")
        sys.stderr.flush()

    rows = generate(
        args.out,
        seed=args.seed,
        count_per_kind=count,
        sample=args.sample,
        faces_dir=args.faces_dir,
        jobs=args.jobs,
        progress=progress,
    )
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    sys.stderr.write(
        f"\n{len(rows)} rows in {args.out} ({size / 1e6:.2f} MB, "
        f"{time.perf_counter() - started:.1f} s)\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
