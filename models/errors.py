"""The one exception type of ``models``: a workspace, model or dataset that cannot be opened as described."""


class WorkspaceError(ValueError):
    """What was wrong (with the offending value) and what to do about it, in one message for the sidebar."""
