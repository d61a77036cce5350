"""The one exception type for problems a user can cause (bad file, bad config value, ...).

Its message is a single line that names the file or key and what was expected; the CLI and the
daemon print it as-is, never with a traceback. Anything else escaping is a bug.
"""


class EdgefaceError(Exception):
    """A user-facing error with a one-line, actionable message."""
