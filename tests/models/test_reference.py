"""models/README.md's field reference is what the table declarations generate, and models stays importable
without streamlit."""

import subprocess
import sys

from models.reference import END, README, START, field_reference


def test_the_readme_field_reference_is_generated_from_the_tables():
    text = README.read_text(encoding="utf-8")
    shown = text.split(START, 1)[1].split(END, 1)[0].strip()
    assert shown == field_reference().strip(), "run `python -m models.reference` to update models/README.md"
    for field in ("`factory`", "`kwargs`", "`path`", "`pretrained`", "`store`", "`input_size`", "`default_layer`"):
        assert field in shown


def test_models_never_imports_streamlit():
    code = "import sys, models, models.train, models.sources; models.sources.sources(); " \
           "assert 'streamlit' not in sys.modules, 'streamlit imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
