"""The sidebar's workspace picker with a workspace file given on the command line (good and broken)."""

from __future__ import annotations

import sys

import torchvision

from gradcam_core import list_conv_layers
from models import DEFAULT_WORKSPACE
from tests.app.helpers import assert_clean, main_images, run_app, viewer_data


def test_a_broken_workspace_file_shows_an_error_and_another_can_be_picked(monkeypatch, tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text('name = "oops"\n[model\narch = "resnet18"\n')
    monkeypatch.setattr(sys, "argv", ["app.py", "--workspace", str(broken)])
    at = run_app()
    assert not at.exception
    assert at.error and "could not be loaded" in at.error[0].value and "broken.toml" in at.error[0].value
    picker = at.selectbox(key="ws")
    assert picker.value == str(broken)  # the command line's workspace comes first
    assert picker.options[0] == "broken.toml (from --workspace)" and DEFAULT_WORKSPACE in picker.options
    assert not at.image

    picker.set_value(DEFAULT_WORKSPACE).run()
    assert_clean(at)
    main_images(at)


def test_a_workspace_file_from_the_command_line_is_explored(monkeypatch, pets_workspace):
    monkeypatch.setattr(sys, "argv", ["app.py", "--workspace", str(pets_workspace)])
    at = run_app()
    assert_clean(at)
    assert at.query_params["ws"] == str(pets_workspace)
    layers = list_conv_layers(torchvision.models.resnet18())
    offered = [name for name, *_ in viewer_data(at)["payload"]["layers"]]  # the viewer's Layer control
    assert offered == layers  # 20 convs, downsample ones too
    assert [b.key for b in at.button if str(b.key).startswith("explorer.strip.")] == [
        f"explorer.strip.{name}" for name in layers]
    assert len([b for b in at.button if str(b.key).startswith("explorer.pick.")]) == 9  # the whole split
    main_images(at)
