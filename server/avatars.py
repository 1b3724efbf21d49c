"""The avatars this server can show: built once per photo, loaded once, shared by sessions."""

from __future__ import annotations

import asyncio
import io
import logging
import shutil
import struct
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lipstream.avatar import AvatarError, BuiltAvatar, build_avatar, cached_avatar
from lipstream.realtime.avatar import Avatar
from lipstream.realtime.render import Renderer
from PIL import Image, UnidentifiedImageError

logger = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_UPLOAD_PIXELS = 20_000_000


class UploadError(ValueError):
    """An uploaded photo was refused; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def check_photo_bytes(data: bytes) -> None:
    """Refuses uploads that are too big, not images, or too many pixels, before any decoding."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise UploadError(413, f"the photo is {len(data)} bytes; the limit is {MAX_UPLOAD_BYTES}")
    if not data:
        raise UploadError(400, "the upload is empty; send a JPEG or PNG photo in the 'photo' field")
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size  # reads the header only: no decompression bomb
    except Image.DecompressionBombError as exc:  # PIL refuses headers over 2x its pixel limit
        raise UploadError(413, "the photo declares too many pixels; the limit is 20 Mpx") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, struct.error) as exc:
        raise UploadError(415, "the upload is not a readable image (JPEG, PNG or WebP)") from exc
    if width * height > MAX_UPLOAD_PIXELS:
        raise UploadError(413, f"the photo has {width}x{height} pixels; the limit is 20 Mpx")


class AvatarStore:
    """Builds avatars off the event loop (one at a time) and caches a ``Renderer`` per avatar.

    Uploads are bounded: at most ``max_uploads`` avatars besides the default are kept loaded, and
    this store deletes from the disk cache the uploads it built once they fall out of that
    least-recently-used set (a session still using one keeps its renderer until it ends).
    """

    def __init__(
        self,
        cache_dir: Path | None = None,
        render_threads: int = 1,
        max_uploads: int = 16,
        framing: str = "auto",
    ) -> None:
        self._cache_dir = cache_dir
        self._framing = framing
        self._render_threads = render_threads
        self._max_uploads = max_uploads
        self._builder = ThreadPoolExecutor(1, thread_name_prefix="avatar-build")
        self._built: OrderedDict[str, BuiltAvatar] = OrderedDict()
        self._renderers: dict[str, Renderer] = {}
        self._uploaded_here: set[str] = set()
        self.default_id: str | None = None

    async def add(self, photo: bytes | Path) -> BuiltAvatar:
        """Builds (or finds in the cache) the avatar for ``photo``; raises ``AvatarError``."""
        loop = asyncio.get_running_loop()
        built = await loop.run_in_executor(self._builder, self._build, photo)
        self._built[built.avatar_id] = built
        if isinstance(photo, bytes) and built.avatar_id != self.default_id:
            self._uploaded_here.add(built.avatar_id)
        self._touch(built.avatar_id)
        return built

    def _touch(self, avatar_id: str) -> None:
        """Marks ``avatar_id`` used now; evicts the least recently used uploads over the bound."""
        self._built.move_to_end(avatar_id)
        uploads = [a for a in self._built if a != self.default_id]
        for old in uploads[: max(0, len(uploads) - self._max_uploads)]:
            built = self._built.pop(old)
            self._renderers.pop(old, None)
            if old in self._uploaded_here:
                self._uploaded_here.discard(old)
                shutil.rmtree(built.path, ignore_errors=True)
            logger.info("Avatar %s evicted (over %d uploads)", old[:12], self._max_uploads)

    def _build(self, photo: bytes | Path) -> BuiltAvatar:
        built = build_avatar(photo, cache_dir=self._cache_dir, framing=self._framing)
        self._renderers.setdefault(built.avatar_id, self._load(built))
        return built

    async def find(self, avatar_id: str | None) -> bool:
        """Whether ``avatar_id`` can be used here, loading it from the on-disk cache if needed.

        With several server processes an upload is built by one of them; the others find the
        result in the shared cache by id. Loading runs off the event loop, like building.
        """
        if avatar_id is None:
            return False
        if avatar_id in self._built:
            self._touch(avatar_id)
            return True
        loop = asyncio.get_running_loop()
        built = await loop.run_in_executor(self._builder, self._load_cached, avatar_id)
        if built is None:
            return False
        self._built[built.avatar_id] = built
        self._touch(built.avatar_id)
        return True

    def _load_cached(self, avatar_id: str) -> BuiltAvatar | None:
        built = cached_avatar(avatar_id, self._cache_dir, framing=self._framing)
        if built is not None:
            self._renderers.setdefault(built.avatar_id, self._load(built))
        return built

    def _load(self, built: BuiltAvatar) -> Renderer:
        return Renderer(Avatar.load(built.path), threads=self._render_threads)

    def renderer(self, avatar_id: str) -> Renderer:
        """The renderer for a known avatar; raises ``KeyError`` for an unknown id."""
        if avatar_id not in self._built:
            raise KeyError(avatar_id)
        return self._renderers[avatar_id]

    def __contains__(self, avatar_id: object) -> bool:
        return avatar_id in self._built

    def ids(self) -> list[str]:
        """Known avatar ids, the default first."""
        return sorted(self._built, key=lambda i: i != self.default_id)

    def close(self) -> None:
        """Stops the build worker."""
        self._builder.shutdown(wait=False, cancel_futures=True)


__all__ = ["AvatarError", "AvatarStore", "UploadError", "check_photo_bytes"]
