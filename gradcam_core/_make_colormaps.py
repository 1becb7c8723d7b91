"""Regenerate ``gradcam_core/_colormap_tables.py`` from matplotlib: ``python -m gradcam_core._make_colormaps``.

matplotlib is a development tool here, not a runtime dependency: the 256-entry tables are taken from its
definitions once, rounded to uint8 (``np.rint(rgb * 255)``), and shipped as data.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

NAMES = ("jet", "turbo", "viridis", "inferno", "gray", "magma", "plasma", "cividis")
TARGET = Path(__file__).with_name("_colormap_tables.py")


def table(name: str) -> np.ndarray:
    """(256, 3) uint8: matplotlib's colormap sampled at 256 even steps of [0, 1], rounded."""
    from matplotlib import colormaps

    rgba = colormaps[name](np.linspace(0.0, 1.0, 256))
    return np.rint(rgba[:, :3] * 255).astype(np.uint8)


def render() -> str:
    import matplotlib

    lines = [
        f'"""256-entry RGB colormap tables, generated from matplotlib {matplotlib.__version__} by',
        "``python -m gradcam_core._make_colormaps``; do not edit by hand.",
        "",
        "Each value is 768 bytes in hex: 256 colours x (R, G, B), uint8, for the values 0/255 ... 255/255.",
        '"""',
        "",
        "TABLES_HEX: dict[str, str] = {",
    ]
    for name in NAMES:
        hexed = table(name).tobytes().hex()
        lines.append(f'    "{name}": (')
        lines += [f'        "{hexed[i:i + 96]}"' for i in range(0, len(hexed), 96)]
        lines.append("    ),")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main() -> int:
    TARGET.write_text(render())
    print(f"wrote {TARGET} ({len(NAMES)} colormaps)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
