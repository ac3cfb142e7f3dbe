"""JSON shapes of vision results, shared by the CLI and the service's evidence records.

Kept in one place so the CLI contract and the service's evidence records agree.
"""

from __future__ import annotations

from typing import Any

from vision.idcard import IdCardReading, SideReading


def side_to_dict(side: SideReading, path: str | None = None) -> dict[str, Any]:
    det = side.card.detection
    out: dict[str, Any] = {
        "side": side.side.value,
        "side_confidence": round(side.side_confidence, 3),
        "rotation": side.rotation,
        "read_path": side.path,
        "card_found": det is not None,
        "card_quad": None if det is None else [[round(float(v), 1) for v in p] for p in det.quad],
        "card_width_px": None if det is None else round(det.width_px, 1),
        "quality": side.quality.as_dict(),
        "warnings": list(side.quality.warnings),
        "timings_ms": {k: round(v, 1) for k, v in side.timings_ms.items()},
    }
    if path is not None:
        out = {"path": path, **out}
    return out


def reading_to_dict(reading: IdCardReading, paths: list[str] | None = None) -> dict[str, Any]:
    """The ``simgate read-id --json`` object."""
    names = paths or [None] * len(reading.sides)  # type: ignore[list-item]
    quality: dict[str, Any] = {}
    for s in reading.sides:
        quality[s.side.value] = s.quality.as_dict()
    return {
        "inputs": paths or [],
        "sides": [side_to_dict(s, p) for s, p in zip(reading.sides, names, strict=True)],
        "fields": {k: v.value for k, v in reading.fields.items()},
        "confidence": {k: round(v.confidence, 4) for k, v in reading.fields.items()},
        "field_sources": {k: v.source for k, v in reading.fields.items()},
        "checks": dict(reading.checks),
        "corrections": list(reading.corrections),
        "warnings": list(reading.warnings),
        "errors": list(reading.errors),
        "quality": quality,
        "timings_ms": {k: round(v, 1) for k, v in reading.timings_ms.items()},
    }


def match_to_dict(m: Any, thresholds: dict[str, float] | None = None) -> dict[str, Any] | None:
    """A :class:`vision.selfie.MatchCheck` or :class:`vision.face.FaceMatch`: verdict,
    score, distance, and the threshold set (``use``) and thresholds where known."""
    if m is None:
        return None
    out: dict[str, Any] = {
        "verdict": m.verdict,
        "score": round(m.score, 4),
        "distance": round(m.distance, 4),
    }
    if getattr(m, "use", None) is not None:
        out["use"] = m.use
    own = getattr(m, "thresholds", None)
    if thresholds is None and own is not None:
        thresholds = {"match": own.match, "no_match": own.no_match}
    if thresholds is not None:
        out["thresholds"] = thresholds
    return out
