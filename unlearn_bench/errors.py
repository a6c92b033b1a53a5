"""The one error type a user sees: the CLI prints its message on one line and exits non-zero."""


class UnlearnBenchError(Exception):
    """A problem with the user's input or environment, stated in one line."""
