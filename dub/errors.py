"""Why a dub cannot run: one exception per reason, each ``str()`` a one-line user message."""

from __future__ import annotations


class DubError(ValueError):
    """Base class: the inputs cannot be dubbed; ``str(exc)`` is shown to the user as it is."""


class DubInputError(DubError):
    """A file is empty, missing a stream, corrupt, or its audio cannot be decoded."""


class DubNoFaceError(DubError):
    """No face was found in any frame of the video."""


class DubTooLongError(DubError):
    """The video or the audio is longer than the limit the caller set."""
