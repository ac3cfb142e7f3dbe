"""The liveness clip generator (services/synth/liveness.py), its committed sample
(fixtures/liveness) and the benchmark's bookkeeping (services/bench/liveness.py).

Fast: challenges, plans (every random choice, no pixels), the committed files. Slow:
rendering every kind (dlib finds the faces of the photos) and the checker on the sample.
Tests that need ../shared/data skip with a message where it is absent.
"""

from __future__ import annotations

import importlib
import random
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from services.synth import liveness as lv
from services.synth.liveness import (
    ACTIONS,
    ATTACK_KINDS,
    EXPECTED_REASONS,
    KINDS,
    SOURCES,
    ActionSpan,
    actions_in,
    challenge_for,
    mirrored,
    reversed_challenge,
    row_actions,
    satisfiable,
)
from services.synth.portrait import MIT_PHOTOS

REPO = Path(__file__).resolve().parents[2]
SAMPLE_DIR = REPO / "fixtures" / "liveness"
MAX_SAMPLE_BYTES = 3 * 1024 * 1024
Row = dict[str, Any]


def _checker() -> Any:
    """vision.liveness when its public API is there, else None."""
    try:
        module = importlib.import_module("vision.liveness")
    except ImportError:
        return None
    return module if hasattr(module, "check_liveness") else None


@pytest.fixture(scope="module")
def faces_dir(shared_data: Path) -> Path:
    faces = shared_data / "faces"
    if not (faces / "videos").is_dir():
        pytest.skip(f"{faces / 'videos'} not found (the shared face set's videos)")
    return faces


# --- challenges --------------------------------------------------------------------------


def _random_spans(rng: random.Random) -> list[ActionSpan]:
    spans, t = [], 0.0
    for _ in range(rng.randint(1, 6)):
        t += rng.uniform(0.0, 1.5)
        length = rng.uniform(0.2, 1.2)
        spans.append(ActionSpan(rng.choice(ACTIONS), round(t, 2), round(t + length, 2)))
        t += rng.uniform(-0.5, length)  # overlaps happen
    return sorted(spans, key=lambda s: s.t_start)


def test_actions_are_the_checkers() -> None:
    checker = _checker()
    if checker is None:
        pytest.skip("vision.liveness (check_liveness) not available yet")
    assert tuple(checker.ACTIONS) == ACTIONS


def test_challenge_asks_only_seen_actions_in_their_order() -> None:
    for case in range(400):
        spans = _random_spans(random.Random(case))
        challenge = challenge_for(spans, random.Random(case))
        seen = {s.action for s in spans}
        assert challenge, case
        assert set(challenge) <= seen, case
        assert len(set(challenge)) == len(challenge), case
        assert len(challenge) <= 3, case
        # Each action after the previous one ended: met by any checker reading the order.
        assert satisfiable(spans, challenge, strict=True), (case, spans, challenge)
        # As long as the clip allows: at least 2 where two distinct actions follow in order.
        chained = any(
            a != b and satisfiable(spans, (a, b), strict=True) for a in seen for b in seen
        )
        assert len(challenge) >= 2 or not chained, (case, spans, challenge)
        # Seeded: the same draw again.
        assert challenge == challenge_for(spans, random.Random(case))


def test_challenge_length_range_and_order() -> None:
    spans = [
        ActionSpan("blink_twice", 0.2, 1.4),
        ActionSpan("turn_left", 1.6, 2.4),
        ActionSpan("open_mouth", 2.6, 3.0),
        ActionSpan("nod", 3.2, 3.8),
    ]
    lengths = set()
    for seed in range(60):
        challenge = challenge_for(spans, random.Random(seed))
        lengths.add(len(challenge))
        assert list(challenge) == sorted(challenge, key=[s.action for s in spans].index)
    assert lengths == {2, 3}
    assert challenge_for(spans[:1], random.Random(0)) == ("blink_twice",)
    with pytest.raises(ValueError, match="no action"):
        challenge_for([], random.Random(0))
    with pytest.raises(ValueError, match="unknown action"):
        challenge_for([ActionSpan("smile", 0, 1)], random.Random(0))


def test_reversed_challenge_cannot_be_met_even_leniently() -> None:
    spans = [ActionSpan("turn_right", 0.3, 1.7), ActionSpan("turn_left", 2.6, 3.9)]
    wrong = reversed_challenge(spans, random.Random(1))
    assert wrong == ("turn_left", "turn_right")
    assert not satisfiable(spans, wrong, strict=False)
    assert satisfiable(spans, tuple(reversed(wrong)), strict=True)
    # The same action again later makes every order possible: no wrong order exists.
    again = [*spans, ActionSpan("turn_right", 4.2, 4.9)]
    assert reversed_challenge(again, random.Random(1)) is None
    assert reversed_challenge(spans[:1], random.Random(1)) is None


def test_sub_clips_keep_whole_events_and_mirror_turns() -> None:
    blink = next(s for s in SOURCES if s.name == "blink")
    spans = actions_in(blink, 0.0, 2.3)
    assert spans == (ActionSpan("blink_twice", 0.38, 1.92),)
    assert actions_in(blink, 0.5, 2.3) is None  # the first blink is cut
    assert actions_in(blink, 2.3, 3.0) == ()  # no event at all
    shifted = actions_in(blink, 8.3, 10.95)
    assert shifted is not None
    assert [(s.action, s.t_start) for s in shifted] == [("blink_twice", 0.88)]
    turns = [ActionSpan("turn_left", 1, 2), ActionSpan("nod", 3, 4)]
    assert [s.action for s in mirrored(turns)] == ["turn_right", "nod"]
    for source in SOURCES:
        assert source.windows
        assert source.events
        assert all(e.action in (*ACTIONS, "blink") for e in source.events)
        assert source.reference_photo or source.reference_frames


# --- plans --------------------------------------------------------------------------------


def _check_row(row: Row, faces: Path, *, sample: bool) -> None:
    kind = row["kind"]
    assert kind in KINDS
    assert row["label"] == ("genuine" if kind == "genuine" else "attack")
    assert row["expected_outcome"] == ("passed" if kind == "genuine" else "rejected")
    assert row["expected_reasons"] == list(EXPECTED_REASONS[kind])
    challenge = row["challenge"]
    assert challenge
    assert len(set(challenge)) == len(challenge)
    assert set(challenge) <= set(ACTIONS)
    assert row["path"].startswith("clips/")
    assert row["path"].endswith((".mp4", ".webm"))
    ref = row["reference"]
    if "photo" in ref:
        assert (faces / ref["photo"]).is_file(), ref
        assert ref["identity"] == ref["photo"].split("/")[1]
        if sample:
            assert ref["photo"] in MIT_PHOTOS, ref
    else:
        assert (faces / ref["frame_of"]).is_file()
        assert ref["file"].startswith("refs/")
    spans = row_actions(row)
    source = row["source"]
    if kind in ("genuine", "two_faces", "other_person", "wrong_order") or (
        kind == "screen_replay" and row["params"]["content"] == "clip"
    ):
        assert source is not None
        assert (faces / source["video"]).is_file()
        assert spans, row["id"]
        if sample:
            assert source["licence"].startswith("MIT"), source
        for part in source["parts"]:
            assert 0 <= part["start"] < part["end"]
    if kind in ("genuine", "two_faces", "other_person") or source is not None:
        if kind != "wrong_order":
            assert satisfiable(spans, challenge, strict=True), row["id"]
    if kind == "wrong_order":
        assert not satisfiable(spans, challenge, strict=False), row["id"]
        assert satisfiable(spans, row["control_challenge"], strict=True)
        assert len(row["source"]["parts"]) == 2
    if kind == "other_person":
        assert ref["identity"] != row["face_identity"]
        assert row["uses"].startswith("genuine_")
    if kind == "two_faces":
        assert row["params"]["second_face"]["identity"] != row["face_identity"]
        assert row["params"]["second_face"]["photo"] in MIT_PHOTOS
    if kind in ("still_photo", "id_portrait") or (
        kind == "screen_replay" and row["params"]["content"] == "photo"
    ):
        assert row["params"]["photo"] in MIT_PHOTOS
        assert ref["identity"] == row["face_identity"]  # the victim's own reference
        assert 2 <= len(challenge) <= 3
        side = lv.SAMPLE_MAX_SIDE if sample else lv.BENCH_MAX_SIDE
        assert max(row["params"]["frame"]["size"]) <= side


def test_plan_is_deterministic_and_valid(faces_dir: Path) -> None:
    rows = lv.plan(seed=11, count_per_kind=4, faces_dir=faces_dir)
    assert rows == lv.plan(seed=11, count_per_kind=4, faces_dir=faces_dir)
    assert rows != lv.plan(seed=12, count_per_kind=4, faces_dir=faces_dir)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["kind"]] = counts.get(row["kind"], 0) + 1
        _check_row(row, faces_dir, sample=False)
    assert counts == {"genuine": 8, **dict.fromkeys(ATTACK_KINDS, 4)}
    assert len({r["id"] for r in rows}) == len(rows)
    # Every source is used, mirrored takes too, both codecs.
    assert {r["source"]["video"] for r in rows if r["kind"] == "genuine"} == {
        s.video for s in SOURCES
    }
    looks = [r["params"]["look"] for r in rows if "look" in r["params"]]
    assert any(lk["flip"] for lk in looks)
    assert any(lk["codec"] == "VP80" for lk in looks)
    # A larger set keeps the first rows' draws (each row depends on seed, kind, index).
    more = {r["id"]: r for r in lv.plan(seed=11, count_per_kind=5, faces_dir=faces_dir)}
    assert all(more[r["id"]] == r for r in rows if r["kind"] != "other_person")


def test_sample_plan_uses_only_committable_material(faces_dir: Path) -> None:
    rows = lv.plan(seed=lv.SAMPLE_SEED, count_per_kind=1, sample=True, faces_dir=faces_dir)
    assert sorted(r["kind"] for r in rows) == sorted(["genuine", "genuine", *ATTACK_KINDS])
    for row in rows:
        _check_row(row, faces_dir, sample=True)


# --- the committed sample -----------------------------------------------------------------


def _sample_rows() -> list[Row]:
    manifest = SAMPLE_DIR / lv.MANIFEST_NAME
    assert manifest.is_file(), f"{manifest} missing: run python -m services.synth.liveness"
    return lv.read_manifest(manifest)


def test_sample_files_exist_and_are_small() -> None:
    rows = _sample_rows()
    assert sorted(r["kind"] for r in rows) == sorted(["genuine", "genuine", *ATTACK_KINDS])
    total = sum(p.stat().st_size for p in SAMPLE_DIR.rglob("*") if p.is_file())
    assert total <= MAX_SAMPLE_BYTES, total
    videos = {r["path"] for r in rows}
    assert {str(p.relative_to(SAMPLE_DIR)) for p in (SAMPLE_DIR / "clips").iterdir()} == videos
    for row in rows:
        path = SAMPLE_DIR / row["path"]
        cap = cv2.VideoCapture(str(path))
        try:
            frames = 0
            while True:
                ok, image = cap.read()
                if not ok:
                    break
                frames += 1
                assert max(image.shape[:2]) <= lv.SAMPLE_MAX_SIDE
        finally:
            cap.release()
        assert frames == row["video"]["frames"], row["id"]
        assert 3.0 <= row["video"]["seconds"] <= 5.0, row["id"]
        # Derived only from material whose licence allows it (MIT).
        if row["source"] is not None:
            assert row["source"]["licence"].startswith("MIT")
        assert "file" not in row["reference"]
        assert row["reference"]["photo"] in MIT_PHOTOS
        for key in ("photo",):
            if key in row["params"]:
                assert row["params"][key] in MIT_PHOTOS


def test_sample_is_what_the_generator_plans(faces_dir: Path) -> None:
    planned = lv.plan(seed=lv.SAMPLE_SEED, count_per_kind=1, sample=True, faces_dir=faces_dir)
    committed = _sample_rows()
    for row in committed:
        row.pop("video")
        row["params"].pop("placed", None)
    assert committed == planned


# --- the benchmark's bookkeeping ------------------------------------------------------------


def test_bench_fails_clearly_without_checker(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from services.bench import liveness as bench

    monkeypatch.setitem(__import__("sys").modules, "vision.liveness", None)
    with pytest.raises(bench.CheckerMissingError, match=r"vision/liveness\.py"):
        bench.require_checker()
    result = CliRunner().invoke(bench.bench_liveness, ["--count-per-kind", "1"])
    assert result.exit_code == bench.EXIT_CANNOT_RUN
    assert "liveness checker is not available" in result.output


def test_bench_summary_counts() -> None:
    from services.bench.liveness import summarise

    rows = [
        {"id": "genuine_000", "path": "a", "challenge": ["nod"], "expected_reasons": []},
        {"id": "genuine_001", "path": "b", "challenge": ["nod"], "expected_reasons": []},
        {"id": "other_person_000", "path": "a", "challenge": ["nod"],
         "expected_reasons": ["face.mismatch"]},
        {"id": "still_photo_000", "path": "c", "challenge": ["nod"],
         "expected_reasons": ["liveness.replay_suspected"]},
    ]  # fmt: skip
    results = [
        {"id": "genuine_000", "kind": "genuine", "label": "genuine", "passed": True,
         "reasons": [], "cpu_s": 1.0, "duration_s": 5.0},
        {"id": "genuine_001", "kind": "genuine", "label": "genuine", "passed": False,
         "reasons": ["face.changed"], "cpu_s": 2.0, "duration_s": 2.5},
        {"id": "other_person_000", "kind": "other_person", "label": "attack", "passed": False,
         "reasons": ["face.mismatch"], "cpu_s": 1.0, "duration_s": 5.0},
        {"id": "still_photo_000", "kind": "still_photo", "label": "attack", "passed": True,
         "reasons": [], "cpu_s": 0.5, "duration_s": 5.0},
    ]  # fmt: skip
    rep = summarise(rows, results)
    assert rep["attacks"]["n"] == 2
    assert rep["attacks"]["accepted"] == 1
    assert rep["attacks"]["accepted_ids"] == ["still_photo_000"]
    assert not rep["attacks"]["target_met"]
    assert rep["kinds"]["other_person"]["expected_reason"] == 1
    assert rep["kinds"]["still_photo"]["expected_reason"] == 0
    assert rep["genuine"]["rejected"] == 1
    assert rep["genuine"]["bpcer"] == 0.5
    # Clip "a" is counted once; CPU per 5 s: 1.0, 4.0, 0.5.
    assert rep["cpu"]["clips"] == 3
    assert rep["cpu"]["per_5s_median"] == pytest.approx(1.0)


# --- slow: pixels and the checker -------------------------------------------------------


@pytest.mark.slow
def test_every_kind_renders_reproducibly(faces_dir: Path, tmp_path: Path) -> None:
    rows = lv.generate(tmp_path / "a", seed=5, count_per_kind=1, sample=True, faces_dir=faces_dir)
    assert {r["kind"] for r in rows} == set(KINDS)
    for row in rows:
        facts = row["video"]
        path = tmp_path / "a" / row["path"]
        cap = cv2.VideoCapture(str(path))
        assert cap.isOpened(), row["id"]
        ok, image = cap.read()
        cap.release()
        assert ok, row["id"]
        assert [image.shape[1], image.shape[0]] == facts["size"], row["id"]
        assert facts["frames"] >= 10
    assert lv.read_manifest(tmp_path / "a" / lv.MANIFEST_NAME) == rows
    # The same seed gives the same pixels (up to the lossy codec, run to run identical).
    still = next(r for r in rows if r["kind"] == "still_photo")
    again = dict(still, params=dict(still["params"]))
    lv.render_row(again, faces_dir, tmp_path / "b")

    def frames(path: Path) -> list[np.ndarray[Any, Any]]:
        cap = cv2.VideoCapture(str(path))
        out = []
        while True:
            ok, image = cap.read()
            if not ok:
                break
            out.append(image)
        cap.release()
        return out

    first, second = frames(tmp_path / "a" / still["path"]), frames(tmp_path / "b" / still["path"])
    assert len(first) == len(second)
    assert all(np.array_equal(x, y) for x, y in zip(first, second, strict=True))


@pytest.mark.slow
def test_checker_refuses_the_sample_attacks(faces_dir: Path) -> None:
    if _checker() is None:
        pytest.skip("vision.liveness (check_liveness) not available yet")
    from services.bench.liveness import _worker_init, run_trial

    _worker_init()
    outcomes = {
        row["id"]: run_trial((row, str(SAMPLE_DIR), str(faces_dir))) for row in _sample_rows()
    }
    accepted = {
        k: v["reasons"] for k, v in outcomes.items() if v["label"] == "attack" and v["passed"]
    }
    assert not accepted, {k: (v["passed"], v["reasons"]) for k, v in outcomes.items()}
