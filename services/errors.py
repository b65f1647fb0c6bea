"""Exceptions whose message is meant for the person using the dashboard.

Pages catch :class:`UserFacingError` and show ``str(error)`` as it is, so every message
says what went wrong and, where there is one, what to do about it.
"""


class UserFacingError(Exception):
    """Bad input or an unavailable resource, explained in plain words."""


class PathOutsideRoot(UserFacingError):
    """A path that resolves outside the configured data root."""


class BadImage(UserFacingError):
    """An image that cannot be decoded or is refused (too small, too large, corrupt)."""


class UnsafeArchive(UserFacingError):
    """A zip that would write outside its target or exceed the configured caps."""


class DownloadFailed(UserFacingError):
    """A download that could not be completed or did not verify."""


class OfflineError(DownloadFailed):
    """No network: the message names the URL and where to put the file by hand."""
