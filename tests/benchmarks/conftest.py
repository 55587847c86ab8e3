"""The benchmark scripts import their helpers as top-level packages
(``perflab``), as ``python benchmarks/perf.py`` does: the folder goes on the path."""

import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))
