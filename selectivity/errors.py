"""The one error type users see: a single line saying what was wrong and what was expected."""


class SelectivityError(ValueError):
    """Bad input to the toolkit. The message is one line: what was wrong, what was expected."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))  # force a single line
