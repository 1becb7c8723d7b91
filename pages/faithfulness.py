"""Faithfulness: which CAM method and layer explain this model most faithfully, with intervals, on a seeded sample
of test images; a shortcut workspace's marker against its objects; and a sanity check of every method."""

from dashboard.faithfulness_view import render_faithfulness_page
from dashboard.shell import current

render_faithfulness_page(current())
