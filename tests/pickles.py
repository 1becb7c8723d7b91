"""A pickle that runs code when loaded, for the tests that prove a loader never unpickles what it reads."""

from pathlib import Path


class CreatesAFile:
    """Unpickling this creates a file: the proof that a loader executed code from the data it read."""

    def __init__(self, target: Path | str):
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))
