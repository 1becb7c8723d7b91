"""``gradcam explain``: one image file explained from the command line."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli.main import main as gradcam

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def photo(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 255, (50, 70, 3), dtype=np.uint8)).save(path)
    return path


def main(argv: list[str]) -> int:
    return gradcam(["explain", *argv])


def test_help_runs_as_a_module_without_importing_torch():
    out = subprocess.run([sys.executable, "-m", "cli", "explain", "--help"], capture_output=True, text=True,
                         cwd=ROOT, check=True, timeout=120)
    assert "original, heatmap and overlay PNGs plus result.json" in out.stdout
    assert "--workspace" in out.stdout and "--arch" in out.stdout and "--model" in out.stdout
    code = "import sys; from cli.main import build_parser; build_parser(); assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


def test_torchvision_arch_with_random_weights(photo, tmp_path, capsys):
    out = tmp_path / "out"
    code = main([str(photo), "--arch", "resnet18", "--weights", "none", "--num-classes", "7",
                 "--layer", "layer3.1.conv2", "--method", "layercam", "--target", "2", "--out", str(out),
                 "--device", "cpu"])
    assert code == 0
    summary = json.loads((out / "result.json").read_text())
    assert summary["layer"] == "layer3.1.conv2" and summary["method"] == "layercam"
    assert summary["target"]["index"] == 2 and len(summary["top5"]) == 5
    probabilities = [entry["probability"] for entry in summary["top5"]]
    assert probabilities == sorted(probabilities, reverse=True)
    for name in ("original.png", "heatmap.png", "overlay.png"):
        with Image.open(out / name) as image:
            assert image.size == (224, 224) and image.mode == "RGB"
    assert "layer3.1.conv2" in capsys.readouterr().out


def test_bundled_workspace_default_layer(photo, tmp_path):
    out = tmp_path / "ws"
    assert main([str(photo), "--workspace", "shapes", "--out", str(out), "--device", "cpu"]) == 0
    summary = json.loads((out / "result.json").read_text())
    import models

    workspace = models.load_workspace("shapes")
    assert summary["layer"] == workspace.default_layer
    assert summary["top5"][0]["name"] in workspace.class_names
    overlay = np.asarray(Image.open(out / "overlay.png"))
    original = np.asarray(Image.open(out / "original.png"))
    assert overlay.shape == original.shape and not np.array_equal(overlay, original)


def test_clear_errors(photo, tmp_path, capsys):
    args = ["--arch", "resnet18", "--weights", "none", "--out", str(tmp_path / "o")]
    assert main([str(tmp_path / "missing.png"), *args]) == 2
    assert "image file not found" in capsys.readouterr().err
    assert main([str(photo), *args, "--layer", "layer9.conv"]) == 2
    assert "layer 'layer9.conv' not found" in capsys.readouterr().err
    (tmp_path / "junk.png").write_bytes(b"not an image at all")
    assert main([str(tmp_path / "junk.png"), *args]) == 2
    assert "not an image format we can read" in capsys.readouterr().err
    assert main([str(photo), "--workspace", "nope"]) == 2
    assert "unknown workspace 'nope'" in capsys.readouterr().err
    assert main([str(photo), *args, "--method", "magic"]) == 2
    assert "unknown CAM method 'magic'" in capsys.readouterr().err
