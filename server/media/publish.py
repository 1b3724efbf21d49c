"""WHIP egress: each channel's output published once to a media server that does the fan-out.

``lipstream serve --publish-whip URL [--publish-token T]`` makes every channel a WHIP client
(RFC 9725) of ``URL``: the avatar video and the re-timed voice, the same frames and the same
encoder settings a WHEP viewer gets (``Channel.subscribe``), go out once per channel however many
people watch through the media server (Janus behind simple-whip-server, LiveKit ingress, a hosted
service). ``{channel}`` in ``URL`` is replaced by the channel's name, for servers with one endpoint
per stream.

A channel's publish lives as long as the channel: it starts when the channel is made (its first
speaker, viewer or event listener) and ends, with a ``DELETE`` on the answer's ``Location``, when
the channel is forgotten (no speaker and no viewers). The publish is not a viewer: it does not keep
the channel, or its idle face, alive. A media server that is down, refuses, or drops the connection
is retried with exponential backoff; each outage is logged once (as WARNING, repeats at DEBUG) and
its end once, and nothing here blocks the event loop or reaches the sessions.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from urllib.parse import quote, urljoin

import aiohttp
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from ..tasks import TaskOwner
from .channel import Channel
from .peer import PeerConnection

logger = logging.getLogger(__name__)

SDP_CONTENT_TYPE = "application/sdp"
POST_TIMEOUT = aiohttp.ClientTimeout(total=15)  # a WHIP server answers once its ICE agent is ready
DELETE_TIMEOUT = aiohttp.ClientTimeout(
    total=3
)  # a teardown that hangs must not hold a closing node
CONNECT_TIMEOUT_S = 15.0  # ICE + DTLS to the media server; longer means it cannot reach us
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 30.0  # a media server back from a restart is found within 30 s
STABLE_S = 30.0  # a publish that stayed up this long resets the backoff
MAX_ANSWER_BYTES = 64 * 1024  # an SDP answer is a few kB; more is not an answer


class PublishError(Exception):
    """One publish attempt failed; the message says why (the status and the server's words)."""


@dataclass(frozen=True)
class PublishTarget:
    """Where and how to publish: the WHIP endpoint (``{channel}`` filled in) and its token."""

    url: str
    token: str | None = None

    def endpoint(self, channel: str) -> str:
        """The endpoint URL for ``channel``."""
        return self.url.replace("{channel}", quote(channel, safe=""))

    def headers(self, content_type: str | None = None) -> dict[str, str]:
        """Bearer authorization (RFC 9725 section 4.5) and, for the offer, its Content-Type."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        if content_type:
            headers["Content-Type"] = content_type
        return headers


def resource_url(endpoint: str, location: str | None) -> str:
    """The WHIP session URL from the 201's ``Location``, relative to the endpoint (RFC 9725 4.2)."""
    if not location:
        raise PublishError("the 201 answer has no Location header")
    return urljoin(endpoint, location)


class ChannelPublisher:
    """Publishes one channel to a WHIP endpoint until ``stop``; use on the event loop only.

    Each attempt: a fresh peer connection with the channel's video and voice subscriptions, an
    offer with every ICE candidate in it (aiortc gathers before ``setLocalDescription`` returns, so
    no trickle), a POST, the answer, then wait until the connection fails or ``stop``. Whatever
    ends an attempt, its subscriptions are stopped, the connection closed and the resource deleted.
    """

    def __init__(
        self, channel: Channel, target: PublishTarget, http: aiohttp.ClientSession
    ) -> None:
        self.channel = channel
        self.target = target
        self.endpoint = target.endpoint(channel.name)
        self.attempts = 0
        self.published = 0  # attempts that got an answer and connected
        self._http = http
        self._tasks = TaskOwner(f"Publish({channel.name})")
        self._stopping = asyncio.Event()
        self._failing: str | None = None  # the current outage's reason, logged once

    def start(self) -> None:
        """Starts publishing in the background."""
        self._tasks.start("run", self._run())

    async def stop(self) -> None:
        """Ends the publish: the current attempt tears down (DELETE included); idempotent."""
        self._stopping.set()
        await self._tasks.cancel_all()

    async def _run(self) -> None:
        backoff = BACKOFF_FIRST_S
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            started = loop.time()
            try:
                await self._attempt()
            except PublishError as exc:
                self._failed(str(exc))
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
                # ValueError: aiortc refusing the answer's SDP.
                self._failed(f"{type(exc).__name__}: {exc}")
            except Exception as exc:  # anything else aiortc raises: retried, never the node's end
                logger.debug("Publish(%s) attempt failed", self.channel.name, exc_info=True)
                self._failed(f"{type(exc).__name__}: {exc}")
            if loop.time() - started >= STABLE_S:
                backoff = BACKOFF_FIRST_S
            try:
                await asyncio.wait_for(self._stopping.wait(), backoff)
            except asyncio.TimeoutError:
                backoff = min(backoff * 2, BACKOFF_MAX_S)

    def _failed(self, reason: str) -> None:
        if self._failing is None:
            logger.warning("Publish(%s) to %s failed: %s", self.channel.name, self.endpoint, reason)
        else:
            logger.debug("Publish(%s) failed again: %s", self.channel.name, reason)
        self._failing = reason

    async def _attempt(self) -> None:
        self.attempts += 1
        pc = PeerConnection()
        tracks = self.channel.subscribe(pc, video=True, voice=True)
        resource: str | None = None
        try:
            resource = await self._offer(pc)
            await self._until_down(pc)
        finally:
            await self._teardown(pc, tracks, resource)

    async def _offer(self, pc: RTCPeerConnection) -> str:
        """Posts the offer; returns the resource URL once the answer is set."""
        await pc.setLocalDescription(await pc.createOffer())
        headers = self.target.headers(SDP_CONTENT_TYPE)
        async with self._http.post(
            self.endpoint, data=pc.localDescription.sdp, headers=headers, timeout=POST_TIMEOUT
        ) as response:
            body = await response.content.read(MAX_ANSWER_BYTES)
            if response.status != 201:
                text = body.decode(errors="replace").strip()[:200]
                raise PublishError(f"{response.status} {response.reason}: {text}")
            resource = resource_url(self.endpoint, response.headers.get("Location"))
        try:
            answer = body.decode()
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        except BaseException:
            await self._delete(resource)
            raise
        return resource

    async def _until_down(self, pc: RTCPeerConnection) -> None:
        """Waits while the connection is up; raises ``PublishError`` once it is down or never up."""
        changed = asyncio.Event()
        pc.on("connectionstatechange", changed.set)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CONNECT_TIMEOUT_S
        while pc.connectionState != "connected":
            if pc.connectionState in ("failed", "closed"):
                raise PublishError(f"the connection to the media server {pc.connectionState}")
            changed.clear()
            try:
                await asyncio.wait_for(changed.wait(), max(deadline - loop.time(), 0.0))
            except asyncio.TimeoutError as exc:
                raise PublishError(f"not connected within {CONNECT_TIMEOUT_S:.0f} s") from exc
        self.published += 1
        if self._failing is not None:
            logger.info("Publish(%s) recovered: publishing to %s", self.channel.name, self.endpoint)
        else:
            logger.info("Publish(%s) publishing to %s", self.channel.name, self.endpoint)
        self._failing = None
        while pc.connectionState == "connected":
            changed.clear()
            await changed.wait()
        raise PublishError(f"the connection to the media server went {pc.connectionState}")

    async def _teardown(
        self, pc: RTCPeerConnection, tracks: list[MediaStreamTrack], resource: str | None
    ) -> None:
        for track in tracks:
            track.stop()  # the relay and the voice fan-out would keep feeding them
        try:
            await pc.close()
        except Exception:  # aiortc's close can raise on a half-built connection
            logger.debug(
                "Publish(%s) closing the connection failed", self.channel.name, exc_info=True
            )
        if resource is not None:
            await self._delete(resource)

    async def _delete(self, resource: str) -> None:
        """DELETEs the WHIP session; a failure is logged, never raised (the server times it out)."""
        try:
            async with self._http.delete(
                resource, headers=self.target.headers(), timeout=DELETE_TIMEOUT
            ) as response:
                if response.status >= 300 and response.status != 404:
                    logger.info(
                        "Publish(%s) DELETE %s: %s", self.channel.name, resource, response.status
                    )
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            logger.info("Publish(%s) DELETE %s failed: %r", self.channel.name, resource, exc)


class Publishing:
    """The node's publishers, one per channel; owned by ``ServerState``, on the event loop only."""

    def __init__(self, target: PublishTarget) -> None:
        self.target = target
        self.by_channel: dict[str, ChannelPublisher] = {}
        self._http: aiohttp.ClientSession | None = None
        self._stops = TaskOwner("Publishing")
        self._stopping: set[asyncio.Task[None]] = set()  # stops under way, awaited by ``close``

    def started(self, channel: Channel) -> None:
        """``channel`` was made: publish it."""
        if self._http is None:
            self._http = aiohttp.ClientSession()
        publisher = ChannelPublisher(channel, self.target, self._http)
        self.by_channel[channel.name] = publisher
        publisher.start()

    def ended(self, channel: Channel) -> None:
        """``channel`` was forgotten: stop its publish (in the background; DELETE included)."""
        publisher = self.by_channel.get(channel.name)
        if publisher is not None and publisher.channel is channel:
            del self.by_channel[channel.name]
            task = self._stops.start(f"stop-{channel.name}", publisher.stop())
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)

    async def close(self) -> None:
        """Stops every publish and waits for their DELETEs; then closes the HTTP client."""
        publishers = list(self.by_channel.values())
        self.by_channel.clear()
        await asyncio.gather(*(p.stop() for p in publishers), *self._stopping)
        if self._http is not None:
            await self._http.close()
