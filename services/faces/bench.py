"""``simgate bench faces``: face-match error rates and CPU cost.

Error rates use the shipped calibration (vision/face_calibration.json) with the
``default`` thresholds, on every unordered pair of (1) the test set ``shared/data/faces``
(people/*; East Asian = both photos of an ``east_asian`` identity) and (2) the held-out
identity split of ``faces-train`` (never fitted on). Raw dlib distance is shown at 0.6 and
at the cut that rejects the same share of same-person pairs as our "match" decision.
CPU: milliseconds per face (detect + encode, one thread, ``time.process_time``).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from services.faces.calibrate import (
    DEFAULT_TRAIN,
    FaceSet,
    Model,
    Pairs,
    all_pairs,
    cp_upper,
    load_train,
    split_identities,
    subset,
)
from services.faces.embed import embed_paths

F64 = npt.NDArray[np.float64]
EA = "east_asian"


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _shipped() -> tuple[Model, tuple[float, float], float, float]:
    from vision.face import calibration

    cal = calibration()
    t = cal.uses["default"]
    model = Model(cal.method, cal.mean, cal.projection, cal.metric, cal.cohort, cal.cohort_top)
    return model, cal.logistic, t.match, t.no_match


def _scores(d: F64, logistic: tuple[float, float]) -> F64:
    a, b = logistic
    out: F64 = 1.0 / (1.0 + np.exp(-(a + b * d)))
    return out


def load_test(root: Path) -> FaceSet:
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    paths: list[Path] = []
    ident: list[int] = []
    ea: list[bool] = []
    names: list[str] = []
    for i, entry in enumerate(manifest["identities"]):
        names.append(entry["identity"])
        for f in entry["photos"]:
            paths.append(root / f)
            ident.append(i)
            ea.append(entry["ethnicity_group"] == EA)
    emb, found = embed_paths(paths, tag="faces-test", verbose=False)
    ok = found == 1
    if (~ok).any():
        _out(f"  no face in {int((~ok).sum())} test photos (excluded)")
    return FaceSet(
        emb=emb[ok],
        ident=np.asarray(ident, dtype=np.int64)[ok],
        ea=np.asarray(ea, dtype=np.bool_)[ok],
        src=np.arange(len(paths), dtype=np.int64)[ok],
        names=tuple(names),
    )


def _pct(k: int, n: int, ub: bool = False) -> str:
    if n == 0:
        return "n/a"
    s = f"{100 * k / n:.2f}% ({k}/{n})"
    return s + (f" ub95 {100 * cp_upper(k, n):.2f}%" if ub else "")


def report_rates(title: str, fs: FaceSet) -> dict[str, Any]:
    model, logistic, t_match, t_no = _shipped()
    p: Pairs = all_pairs(fs, model)
    sg, sg_ea = _scores(p.genuine, logistic), _scores(p.genuine_ea, logistic)
    si, si_ea = _scores(p.impostor, logistic), _scores(p.impostor_ea, logistic)
    _out(f"\n## {title}")
    _out(
        f"{len(np.unique(fs.ident))} identities, {len(fs.emb)} faces; pairs: "
        f"{len(p.genuine)} same ({len(p.genuine_ea)} East Asian), "
        f"{len(p.impostor)} different ({len(p.impostor_ea)} both East Asian)"
    )
    _out(f"method {model.name}; score thresholds match >= {t_match:.4f}, no_match < {t_no:.4f}")
    _out("| decision | overall | East Asian |")
    _out("|---|---|---|")
    rows: dict[str, Any] = {}

    def row(name: str, v: F64, v_ea: F64, cond: Any, ub: bool = False) -> None:
        k, k_ea = int(cond(v).sum()), int(cond(v_ea).sum())
        rows[name] = {"overall": [k, len(v)], "east_asian": [k_ea, len(v_ea)]}
        _out(f"| {name} | {_pct(k, len(v), ub)} | {_pct(k_ea, len(v_ea), ub)} |")

    row("different person -> match (FAR)", si, si_ea, lambda s: s >= t_match, ub=True)
    row("same person -> no_match (FRR)", sg, sg_ea, lambda s: s < t_no)
    row("same person -> gray", sg, sg_ea, lambda s: (s >= t_no) & (s < t_match))
    row("same person -> not match", sg, sg_ea, lambda s: s < t_match)
    row("raw dlib 0.6: different accepted", p.raw_impostor, p.raw_impostor_ea, lambda d: d < 0.6)
    row("raw dlib 0.6: same rejected", p.raw_genuine, p.raw_genuine_ea, lambda d: d >= 0.6)
    not_match = float((sg < t_match).mean())
    cut = float(np.quantile(p.raw_genuine, 1.0 - not_match))
    row(
        f"raw dlib at equal FRR ({100 * not_match:.1f}%, cut {cut:.3f}): different accepted",
        p.raw_impostor,
        p.raw_impostor_ea,
        lambda d: d < cut,
        ub=True,
    )
    frr_no = float((sg < t_no).mean())
    cut2 = float(np.quantile(p.raw_genuine, 1.0 - frr_no)) if frr_no > 0 else float("nan")
    if frr_no > 0:
        row(
            f"raw dlib at no_match FRR ({100 * frr_no:.1f}%, cut {cut2:.3f}): different accepted",
            p.raw_impostor,
            p.raw_impostor_ea,
            lambda d: d < cut2,
        )
    return rows


def _time_faces(image: npt.NDArray[np.uint8], repeats: int) -> dict[str, float]:
    """CPU ms of detect + encode of the largest face: median and p95 of the total, and
    the medians of the two parts (encoding is dlib's network, a fixed ~100 ms a face)."""
    from vision.face import detect_faces, encode_face

    boxes = detect_faces(image)  # warm-up (models load)
    if not boxes:
        return {"faces": 0.0}
    total, detect, encode = [], [], []
    for _ in range(repeats):
        t0 = time.process_time()
        box = detect_faces(image)[0]
        t1 = time.process_time()
        encode_face(image, box)
        t2 = time.process_time()
        detect.append(1000 * (t1 - t0))
        encode.append(1000 * (t2 - t1))
        total.append(1000 * (t2 - t0))
    total.sort()
    return {
        "faces": float(len(boxes)),
        "median_ms": statistics.median(total),
        "p95_ms": total[min(len(total) - 1, round(0.95 * (len(total) - 1)))],
        "detect_ms": statistics.median(detect),
        "encode_ms": statistics.median(encode),
    }


def report_cpu(root: Path, repeats: int) -> dict[str, Any]:
    from vision.face import detect_faces
    from vision.io import load_image

    cv2.setNumThreads(1)
    photo = load_image(root / "people" / "Barack_Obama" / "1.jpg").pixels
    k = 4000 / photo.shape[0]  # same aspect, then crop the width to 3000: 12 MP
    wide = cv2.resize(photo, (round(photo.shape[1] * k), 4000), interpolation=cv2.INTER_CUBIC)
    x = (wide.shape[1] - 3000) // 2
    big: npt.NDArray[np.uint8] = np.ascontiguousarray(wide[:, x : x + 3000], dtype=np.uint8)
    box = detect_faces(photo)[0]
    # A card-portrait-like crop: the face with its shoulders, 300x390 (ID photo aspect).
    cx, cy = (box.left + box.right) // 2, (box.top + box.bottom) // 2
    half_w = int(box.width * 1.1)
    half_h = int(half_w * 390 / 300)
    y0, x0 = max(0, cy - int(half_h * 0.9)), max(0, cx - half_w)
    crop = photo[y0 : y0 + 2 * half_h, x0 : x0 + 2 * half_w]
    small = np.asarray(cv2.resize(crop, (300, 390), interpolation=cv2.INTER_AREA), np.uint8)
    _out("\n## CPU per face (detect + encode, one thread)")
    _out("| image | median ms | p95 ms | detect (median) | encode (median) | faces |")
    _out("|---|---|---|---|---|---|")
    out: dict[str, Any] = {}
    for name, img in (("12 MP photo (3000x4000)", big), ("card portrait (300x390)", small)):
        r = out[name] = _time_faces(img, repeats)
        if not r["faces"]:
            _out(f"| {name} | - | - | - | - | 0 |")
            continue
        _out(
            f"| {name} | {r['median_ms']:.0f} | {r['p95_ms']:.0f} | {r['detect_ms']:.0f} "
            f"| {r['encode_ms']:.0f} | {r['faces']:.0f} |"
        )
    total = sum(v.get("median_ms", 0.0) for v in out.values()) / 1000
    _out(f"one order (selfie 12 MP + card portrait, median): {total:.2f} CPU-s (target <= 0.3)")
    return out


def run(*, data: Path | None = None, repeats: int = 10) -> dict[str, Any]:
    shared = data or DEFAULT_TRAIN.parent
    test_root, train_root = shared / "faces", shared / "faces-train"
    cv2.setNumThreads(1)
    out: dict[str, Any] = {}
    out["test"] = report_rates("Test set (shared/data/faces)", load_test(test_root))
    if train_root.is_dir():
        manifest = json.loads((train_root / "manifest.json").read_text(encoding="utf-8"))
        groups = [e["group"] or "null" for e in manifest["identities"]]
        fs, _counts = load_train(train_root)
        _fit, held = split_identities(fs, groups)
        out["held_out"] = report_rates("faces-train, held-out identity split", subset(fs, held))
    out["cpu"] = report_cpu(test_root, repeats)
    return out
