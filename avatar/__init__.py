"""Once-per-photo preparation: face detection, landmarks, framing and the generator's rig."""

from lipstream.avatar.build import (
    BuiltAvatar,
    build_avatar,
    cached_avatar,
    default_cache_dir,
    default_photo,
)
from lipstream.avatar.errors import (
    AvatarError,
    FaceTooSmallError,
    NoFaceError,
    NotAnImageError,
    PhotoTooLargeError,
    ProfileFaceError,
)

__all__ = [
    "AvatarError",
    "BuiltAvatar",
    "FaceTooSmallError",
    "NoFaceError",
    "NotAnImageError",
    "PhotoTooLargeError",
    "ProfileFaceError",
    "build_avatar",
    "cached_avatar",
    "default_cache_dir",
    "default_photo",
]
