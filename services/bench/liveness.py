"""``simgate bench liveness``: the video activation check (R7) against attacks.

Generates a fresh labelled set (``services.synth.liveness``: genuine takes of the real
videos of the shared face set, re-shot, and six kinds of attack) into a temporary
folder, or reads one (``--set``, e.g. ``fixtures/liveness``), and runs
``vision.liveness.check_liveness`` on every (clip, challenge, reference) trial:

- APCER per attack kind: the share of attack trials *accepted* (``passed``), with
  counts, and how often one of the expected reasons was among those given;
- BPCER: the share of genuine clips *rejected*, per source video;
- cost: CPU seconds (process time of one single-threaded worker: decoding plus the
  check; the reference portrait's embedding is computed once per photo beforehand, as
  the service has it from the order) per clip, normalised to 5 s of video.

Targets: no attack accepted among at least 100 attack trials, BPCER <= 5%, <= 2 CPU-s
per 5-s clip (median and p95). Exit 0: all met; 1: a target missed; 2: cannot run.

``wrong_order`` trials are also run with their ``control_challenge`` (the same actions
in their real order): a refusal of the reversed order says something only where the
right order is accepted.
"""

from __future__ import annotations

import importlib
import json
import multiprocessing
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

TARGET_ATTACKS = 100
TARGET_APCER = 0.0
TARGET_BPCER = 0.05
TARGET_CPU_PER_5S = 2.0
EXIT_MISS = 1
EXIT_CANNOT_RUN = 2


class CheckerMissingError(RuntimeError):
    """vision.liveness / vision.video are not there (yet)."""


def require_checker() -> None:
    """Raise :class:`CheckerMissingError` unless the checker's API can be imported."""
    try:
        liveness = importlib.import_module("vision.liveness")
        video = importlib.import_module("vision.video")
    except ImportError as exc:
        raise CheckerMissingError(
            "the liveness checker is not available: vision/liveness.py (check_liveness) "
            f"and vision/video.py (decode_video) must exist ({exc})"
        ) from exc
    missing = [
        name
        for module, name in ((liveness, "check_liveness"), (video, "decode_video"))
        if not hasattr(module, name)
    ]
    if missing:
        raise CheckerMissingError(f"the liveness checker lacks {', '.join(missing)}")


# --- one trial (runs in a worker process) ---------------------------------------------

_REFERENCES: dict[str, Any] = {}


def _worker_init() -> None:
    import cv2
    import numpy as np

    from vision import face

    cv2.setNumThreads(1)
    # Load the dlib models now, not inside the first clip's timing.
    face.detect_faces(np.zeros((100, 100, 3), np.uint8))


def _reference(path: Path) -> tuple[Any, Any]:
    """(embedding, None) of a reference still, or (None, pixels) when no face is found
    there (the checker then says why)."""
    key = str(path)
    if key not in _REFERENCES:
        from vision import face
        from vision.io import load_image

        pixels = load_image(path).pixels
        found = face.largest_face(pixels)
        _REFERENCES[key] = (found.encoding, None) if found is not None else (None, pixels)
    cached: tuple[Any, Any] = _REFERENCES[key]
    return cached


def run_trial(job: tuple[dict[str, Any], str, str]) -> dict[str, Any]:
    """Decode one clip and check it against its challenge and reference."""
    from services.synth.liveness import reference_path
    from vision.errors import VisionError
    from vision.liveness import check_liveness
    from vision.video import decode_video

    row, set_dir, faces_dir = job
    encoding, portrait = _reference(reference_path(row, Path(set_dir), Path(faces_dir)))
    data = (Path(set_dir) / row["path"]).read_bytes()
    out: dict[str, Any] = {"id": row["id"], "kind": row["kind"], "label": row["label"]}
    started = time.process_time()
    try:
        video = decode_video(data)
    except VisionError as exc:
        out.update(
            passed=False,
            reasons=[exc.code],
            cpu_s=time.process_time() - started,
            duration_s=float(row.get("video", {}).get("seconds") or 0.0),
        )
        return out
    result = check_liveness(
        video, row["challenge"], reference_portrait=portrait, reference_encoding=encoding
    )
    cpu = time.process_time() - started
    out.update(
        passed=bool(result.passed),
        reasons=list(result.reasons),
        cpu_s=cpu,
        duration_s=float(video.duration_s),
        actions={a.action: bool(a.seen) for a in result.actions},
        measured={a.action: round(float(a.measured), 3) for a in result.actions},
        face_score=None if result.face_match is None else round(result.face_match.score, 3),
        face_verdict=None if result.face_match is None else result.face_match.verdict,
        replay={k: round(float(v), 4) for k, v in result.replay_signals.items()},
        timings_ms=dict(result.timings_ms),
    )
    control = row.get("control_challenge")
    if control:
        again = check_liveness(
            video, control, reference_portrait=portrait, reference_encoding=encoding
        )
        out["control_passed"] = bool(again.passed)
        out["control_reasons"] = list(again.reasons)
    return out


# --- the whole set ----------------------------------------------------------------------


class Progress:
    """A one-line progress counter on stderr (stdout stays the report)."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total = label, total
        self.started = time.perf_counter()

    def update(self, count: int, _total: int | None = None) -> None:
        elapsed = time.perf_counter() - self.started
        eta = elapsed / count * (self.total - count) if count else 0.0
        sys.stderr.write(
            f"\r{self.label}: {count}/{self.total}  ({elapsed:.0f} s, ~{eta:.0f} s left)"
        )
        sys.stderr.flush()

    def done(self) -> None:
        sys.stderr.write("\n")


def evaluate(
    rows: Sequence[dict[str, Any]], set_dir: Path, faces_dir: Path, jobs: int
) -> list[dict[str, Any]]:
    """Run every trial of a set (in row order); ``jobs`` worker processes."""
    work = [(row, str(set_dir), str(faces_dir)) for row in rows]
    bar = Progress("check", len(work))
    results: list[dict[str, Any]] = []
    if jobs <= 1:
        _worker_init()
        for n, job in enumerate(work, 1):
            results.append(run_trial(job))
            bar.update(n)
    else:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(jobs, initializer=_worker_init) as pool:
            for n, result in enumerate(pool.imap(run_trial, work, chunksize=1), 1):
                results.append(result)
                bar.update(n)
    bar.done()
    return results


def _pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[k]


def _source_name(row: dict[str, Any]) -> str:
    source = row.get("source") or {}
    video = str(source.get("video") or "photo")
    return video.rsplit("/", 1)[-1].split(".")[0]


def summarise(rows: Sequence[dict[str, Any]], results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Rates, counts and costs per kind, with the targets' verdicts."""
    by_id = {r["id"]: r for r in rows}
    kinds: dict[str, dict[str, Any]] = {}
    for res in results:
        row = by_id[res["id"]]
        k = kinds.setdefault(
            res["kind"],
            {"n": 0, "accepted": 0, "rejected": 0, "expected_reason": 0, "reasons": Counter()},
        )
        k["n"] += 1
        k["accepted" if res["passed"] else "rejected"] += 1
        expected = set(row.get("expected_reasons") or [])
        if expected and expected & set(res["reasons"]):
            k["expected_reason"] += 1
        k["reasons"].update(res["reasons"])
        if "control_passed" in res:
            k["control_accepted"] = k.get("control_accepted", 0) + int(res["control_passed"])
            k.setdefault("control_reasons", Counter()).update(res["control_reasons"])
    for k in kinds.values():
        k["reasons"] = dict(k["reasons"].most_common())
        if "control_reasons" in k:
            k["control_reasons"] = dict(k["control_reasons"].most_common())
    attacks = [r for r in results if r["label"] == "attack"]
    genuine = [r for r in results if r["label"] == "genuine"]
    accepted = [r["id"] for r in attacks if r["passed"]]
    rejected = [r for r in genuine if not r["passed"]]
    per_source: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in genuine:
        cell = per_source[_source_name(by_id[r["id"]])]
        cell[0] += int(not r["passed"])
        cell[1] += 1
    # Cost: every video checked once (pair kinds reuse a genuine clip: counted once).
    seen: set[str] = set()
    cpu, per5, lengths = [], [], []
    for r in results:
        path = by_id[r["id"]]["path"]
        if path in seen or r["duration_s"] <= 0:
            continue
        seen.add(path)
        cpu.append(r["cpu_s"])
        lengths.append(r["duration_s"])
        per5.append(r["cpu_s"] * 5.0 / r["duration_s"])
    apcer = len(accepted) / len(attacks) if attacks else float("nan")
    bpcer = len(rejected) / len(genuine) if genuine else float("nan")
    cpu_p95 = _pct(per5, 0.95)
    return {
        "kinds": kinds,
        "attacks": {
            "n": len(attacks),
            "accepted": len(accepted),
            "apcer": apcer,
            "accepted_ids": accepted,
            "target_met": bool(attacks) and not accepted and len(attacks) >= TARGET_ATTACKS,
        },
        "genuine": {
            "n": len(genuine),
            "rejected": len(rejected),
            "bpcer": bpcer,
            "per_source": {k: {"rejected": v[0], "n": v[1]} for k, v in sorted(per_source.items())},
            "rejections": [
                {
                    "id": r["id"],
                    "reasons": r["reasons"],
                    "challenge": by_id[r["id"]]["challenge"],
                    "measured": r.get("measured"),
                    "face_score": r.get("face_score"),
                }
                for r in rejected
            ],
            "target_met": bool(genuine) and bpcer <= TARGET_BPCER,
        },
        "cpu": {
            "clips": len(per5),
            "per_5s_median": statistics.median(per5) if per5 else float("nan"),
            "per_5s_p95": cpu_p95,
            "per_clip_median": statistics.median(cpu) if cpu else float("nan"),
            "per_clip_p95": _pct(cpu, 0.95),
            "clip_seconds_median": statistics.median(lengths) if lengths else float("nan"),
            "target_met": bool(per5) and cpu_p95 <= TARGET_CPU_PER_5S,
        },
    }


def _verdict(met: bool) -> str:
    return "PASS" if met else "MISS"


def print_report(rep: dict[str, Any], header: str) -> None:
    echo = click.echo
    echo(f"\n== {header} ==")
    echo(f"{'kind':<15}{'n':>5}{'accepted':>10}{'rate':>8}{'expected reason':>17}  reasons given")
    order = ["genuine", *[k for k in rep["kinds"] if k != "genuine"]]
    for kind in order:
        k = rep["kinds"].get(kind)
        if k is None:
            continue
        rate = 100.0 * k["accepted"] / k["n"]
        label = "APCER" if kind != "genuine" else "passed"
        reasons = ", ".join(f"{r} {c}" for r, c in list(k["reasons"].items())[:4]) or "-"
        expected = f"{k['expected_reason']}/{k['n']}" if kind != "genuine" else "-"
        echo(
            f"{kind:<15}{k['n']:>5}{k['accepted']:>10}{rate:>7.1f}%{expected:>17}  {reasons}"
            + (f"   [{label}]" if kind == "genuine" else "")
        )
    a = rep["attacks"]
    apcer_note = "" if a["n"] >= TARGET_ATTACKS else f", only {a['n']} trials (< {TARGET_ATTACKS})"
    echo(
        f"\nAPCER, all attack kinds: {a['accepted']}/{a['n']} accepted = {100 * a['apcer']:.1f}% "
        f"(target: 0 of >= {TARGET_ATTACKS}{apcer_note}) {_verdict(a['target_met'])}"
    )
    if a["accepted_ids"]:
        echo(f"  accepted attacks: {', '.join(a['accepted_ids'])}")
    wrong = rep["kinds"].get("wrong_order")
    if wrong and "control_accepted" in wrong:
        reasons = ", ".join(f"{r} {c}" for r, c in wrong["control_reasons"].items()) or "-"
        echo(
            f"wrong_order controls (same clips, actions asked in their real order): "
            f"{wrong['control_accepted']}/{wrong['n']} accepted; reasons: {reasons}"
        )
    g = rep["genuine"]
    by_source = ", ".join(f"{s} {v['rejected']}/{v['n']}" for s, v in g["per_source"].items())
    echo(
        f"BPCER: {g['rejected']}/{g['n']} genuine clips rejected = {100 * g['bpcer']:.1f}% "
        f"(target <= {100 * TARGET_BPCER:.0f}%) {_verdict(g['target_met'])}; by source: {by_source}"
    )
    for r in g["rejections"]:
        echo(
            f"  {r['id']}: {', '.join(r['reasons'])}; asked {r['challenge']}, "
            f"measured {r['measured']}, face score {r['face_score']}"
        )
    c = rep["cpu"]
    echo(
        f"CPU s per 5 s of video (decode + check, one thread, {c['clips']} clips, median "
        f"{c['clip_seconds_median']:.1f} s long): median {c['per_5s_median']:.2f}, "
        f"p95 {c['per_5s_p95']:.2f} (target <= {TARGET_CPU_PER_5S:g}) "
        f"{_verdict(c['target_met'])}; per clip: median {c['per_clip_median']:.2f}, "
        f"p95 {c['per_clip_p95']:.2f}"
    )


def run(
    *,
    count_per_kind: int,
    seed: int,
    out: Path | None,
    set_dir: Path | None,
    jobs: int,
    json_out: Path | None,
) -> int:
    """Generate (or read) a set, check every trial, print the report; the exit code."""
    try:
        require_checker()
    except CheckerMissingError as exc:
        click.echo(f"simgate bench liveness: {exc}", err=True)
        return EXIT_CANNOT_RUN
    from services.synth.liveness import MANIFEST_NAME, generate, read_manifest
    from services.synth.portrait import default_faces_dir

    faces_dir = default_faces_dir()
    if not (faces_dir / "videos").is_dir():
        click.echo(
            f"simgate bench liveness: {faces_dir / 'videos'} not found (set SIMGATE_SHARED_DATA)",
            err=True,
        )
        return EXIT_CANNOT_RUN
    temporary: Path | None = None
    started = time.perf_counter()
    if set_dir is not None:
        rows = read_manifest(set_dir / MANIFEST_NAME)
        header = f"Liveness on {set_dir}: {len(rows)} trials"
    else:
        if out is None:
            temporary = Path(tempfile.mkdtemp(prefix="simgate-liveness-"))
        set_dir = out or temporary
        assert set_dir is not None
        click.echo(
            f"generating {count_per_kind} trials per attack kind, {2 * count_per_kind} genuine "
            f"clips into {set_dir} (seed {seed})",
            err=True,
        )
        bar = Progress("generate", 0)
        rows = generate(
            set_dir, seed=seed, count_per_kind=count_per_kind, jobs=jobs, progress=_progress(bar)
        )
        bar.done()
        header = f"Liveness: {len(rows)} trials, seed {seed}, {count_per_kind} per attack kind"
    gen_s = time.perf_counter() - started
    try:
        results = evaluate(rows, set_dir, faces_dir, jobs)
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
    report = summarise(rows, results)
    report["set"] = {"dir": str(set_dir), "seed": seed, "rows": len(rows)}
    report["seconds"] = {
        "generate": round(gen_s, 1),
        "total": round(time.perf_counter() - started, 1),
    }
    print_report(report, header)
    if json_out is not None:
        report["trials"] = results
        json_out.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
        click.echo(f"\nJSON report written to {json_out}", err=True)
    met = report["attacks"]["target_met"] and report["genuine"]["target_met"]
    met = met and report["cpu"]["target_met"]
    return 0 if met else EXIT_MISS


def _progress(bar: Progress) -> Any:
    def update(done: int, total: int) -> None:
        bar.total = total
        bar.update(done)

    return update


@click.command("liveness")
@click.option(
    "--count-per-kind",
    default=17,
    show_default=True,
    help="Trials per attack kind (6 kinds); genuine clips: twice as many.",
)
@click.option("--seed", default=2026, show_default=True, help="Generator seed.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the generated set here (default: a temporary folder, deleted after).",
)
@click.option(
    "--set",
    "set_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Check an existing set (a folder with manifest.jsonl) instead of generating one.",
)
@click.option("--jobs", default=2, show_default=True, help="Worker processes, one thread each.")
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the report, with every trial's result, as JSON here.",
)
def bench_liveness(
    count_per_kind: int,
    seed: int,
    out: Path | None,
    set_dir: Path | None,
    jobs: int,
    json_out: Path | None,
) -> None:
    """Video activation (R7): APCER per attack kind, BPCER, CPU per 5 s of video."""
    sys.exit(
        run(
            count_per_kind=count_per_kind,
            seed=seed,
            out=out,
            set_dir=set_dir,
            jobs=jobs,
            json_out=json_out,
        )
    )
