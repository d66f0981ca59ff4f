"""The one exception type for a user's mistake: bad data, a wrong path, a failed gate."""


class PipelineError(Exception):
    """A problem the user can fix. The message is one line: what is wrong and how to fix it."""
