"""Faithfulness: which CAM method and layer explain this model most faithfully, with intervals, on a seeded sample
of test images; a shortcut workspace's marker against its objects; and a sanity check of every method."""

from dashboard import page_help
from dashboard.faithfulness_view import render_page_body, render_page_header
from dashboard.shell import current

loaded = current()
render_page_header(loaded)
page_help.show("faithfulness")
render_page_body(loaded)
