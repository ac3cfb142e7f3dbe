"""``python -m services.synth --out DIR --count N --seed S [--sample]``: write a data set."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from services.synth.capture import CaptureKind
from services.synth.dataset import generate_dataset

# The committed sample (fixtures/idcards): few cards, every kind at least once, MIT faces
# only, small files.
SAMPLE_KINDS_PER_CARD = 2
SAMPLE_MAX_SIDE = 1152
SAMPLE_MAX_JPEG_QUALITY = 80


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.synth", description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--count", type=int, required=True, help="number of cards")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--kinds",
        default=None,
        help=f"comma-separated capture kinds (default: all): {','.join(CaptureKind)}",
    )
    parser.add_argument("--kinds-per-card", type=int, default=None)
    parser.add_argument("--faces-dir", type=Path, default=None, help="default: <shared data>/faces")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: up to 2)")
    parser.add_argument(
        "--sample",
        action="store_true",
        help=(
            f"committed-sample settings: {SAMPLE_KINDS_PER_CARD} kinds per card, MIT-licensed "
            f"faces only, frames at most {SAMPLE_MAX_SIDE} px, "
            f"JPEG quality at most {SAMPLE_MAX_JPEG_QUALITY}"
        ),
    )
    args = parser.parse_args(argv)
    kinds = [CaptureKind(k.strip()) for k in args.kinds.split(",")] if args.kinds else None
    per_card = args.kinds_per_card
    if args.sample and per_card is None:
        per_card = SAMPLE_KINDS_PER_CARD
    started = time.perf_counter()

    def progress(done: int, total: int) -> None:
        sys.stderr.write(f"\rcards {done}/{total}")
        sys.stderr.flush()

    paths = generate_dataset(
        args.out,
        count=args.count,
        seed=args.seed,
        kinds=kinds,
        faces_dir=args.faces_dir,
        progress=progress,
        kinds_per_card=per_card,
        mit_faces_only=args.sample,
        max_side=SAMPLE_MAX_SIDE if args.sample else None,
        max_jpeg_quality=SAMPLE_MAX_JPEG_QUALITY if args.sample else None,
        workers=args.workers,
    )
    elapsed = time.perf_counter() - started
    sys.stderr.write(f"\n{len(paths)} captures in {args.out} ({elapsed:.1f} s)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
