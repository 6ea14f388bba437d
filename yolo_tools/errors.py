"""The one exception type the CLI turns into a plain message instead of a traceback."""


class UserError(Exception):
    """A problem the user can fix (a bad recipe, missing data, a wrong path): shown without a traceback."""
