"""The one exception type for user mistakes; the CLI prints its message instead of a traceback."""


class EdgekdError(Exception):
    """A problem the user can fix (bad config, missing data, corrupt file). The message says how."""


class BadInput(EdgekdError, ValueError):
    """Input the runtime cannot use (wrong dtype, shape or size; an unreadable or hostile image file).
    A ValueError, as numpy and onnxruntime users expect, and an EdgekdError for the CLI."""
