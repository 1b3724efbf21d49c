"""Why a photo cannot become an avatar: one exception per reason, each with a user message."""

from __future__ import annotations


class AvatarError(ValueError):
    """Base class: the photo cannot be turned into an avatar; ``str(exc)`` is shown to the user."""


class NotAnImageError(AvatarError):
    """The bytes are not a decodable image (wrong format, truncated or corrupt)."""


class PhotoTooLargeError(AvatarError):
    """The image has more pixels than the builder accepts."""


class NoFaceError(AvatarError):
    """No face was found, or a face was found but its landmarks could not be fitted."""


class FaceTooSmallError(AvatarError):
    """The face is under the minimum width in pixels."""


class ProfileFaceError(AvatarError):
    """The head is turned too far to the side for a frontal talking face."""
