"""Exceptions that the command line turns into one-line messages and exit code 2."""


class InputError(ValueError):
    """Bad user input: malformed formula, unknown element, impossible separations,
    missing or unreadable file, invalid config. The message is shown as is."""


class DatabaseBusyError(RuntimeError):
    """The results database is locked by another live writer."""
