"""`python -m bench --quick` keeps working: every section runs on tiny sizes and writes its table.

No timing is asserted here (speed is what BENCHMARKS.md reports); this only catches a benchmark that broke.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_benchmark_writes_every_section(tmp_path):
    out = tmp_path / "bench.md"
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    for heading in ("### Layer sweep", "### Top-5 targets", "### Gallery", "### What bounds", "### Other architectures",
                    "### Peak resident memory", "t-SNE", "### Dashboard latency", "### Model sources",
                    "### Faithfulness", "### Dataset scale", "### Dashboard at any dataset size",
                    "### Browser latency"):
        assert heading in text, f"{heading!r} missing from the quick benchmark output"
    assert "Failed:" not in text
    assert "logical cores, torch" in text, "the machine is recorded with the tables"
