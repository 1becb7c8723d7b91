"""Report: the findings pinned with "Add to report" on the sidebar's workspace, in order, with their pictures and
notes; reorder, edit, remove, reopen each in the explorer, and download the self-contained HTML report.
"""

import streamlit as st

from dashboard import page_help, report_view
from dashboard.shell import current

loaded = current()
report_view.follow_open_request()
st.title("Report", anchor=False)
page_help.show("report")
report_view.render_report_page(loaded)
