"""CPU time per pipeline stage, for the ``timings_ms`` every result carries."""

from __future__ import annotations

import time


class StageTimer:
    """Accumulates CPU milliseconds per named stage.

    Process CPU time, not wall time: the machines are shared and wall time is noise.
    """

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}
        self._last = time.process_time()

    def lap(self, stage: str) -> None:
        """Charge the time since the previous lap (or creation) to ``stage``."""
        now = time.process_time()
        self.ms[stage] = self.ms.get(stage, 0.0) + (now - self._last) * 1000
        self._last = now
