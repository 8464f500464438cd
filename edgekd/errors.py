"""The one exception type for user mistakes; the CLI prints its message instead of a traceback."""


class EdgekdError(Exception):
    """A problem the user can fix (bad config, missing data, corrupt file). The message says how."""
