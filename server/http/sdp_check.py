"""Validation of WHIP/WHEP offers before any connection exists, with reasons a client can act on.

aiortc's parser is written for offers it made itself: on other input it raises ValueError,
IndexError, KeyError, but also AssertionError, AttributeError, StopIteration and TypeError. Each is
a malformed offer here, answered 400 with the parser's words (tests/test_server_fuzz.py throws
generated offers at it).
"""

from __future__ import annotations

from dataclasses import dataclass

from aiortc.sdp import MediaDescription, SessionDescription

MAX_OFFER_BYTES = 64 * 1024  # real offers are 2-8 KB; anything bigger is not an offer


class OfferError(ValueError):
    """The offer cannot start a session; the message says why (sent to the client with 400)."""


@dataclass(frozen=True)
class OfferShape:
    """What the client's offer asks for, from the client's point of view."""

    sends_audio: bool  # the client will send a voice
    receives_audio: bool  # the client wants the re-timed voice back
    receives_video: bool  # the client wants the avatar video


def _directions(description: SessionDescription, kind: str) -> list[str]:
    return [m.direction or "sendrecv" for m in description.media if m.kind == kind and m.port != 0]


def parse_offer(sdp: str) -> OfferShape:
    """Parses ``sdp`` and says what it asks for; raises ``OfferError`` if it is no usable offer."""
    if not sdp.strip():
        raise OfferError("the request body is empty; expected an SDP offer")
    if len(sdp.encode()) > MAX_OFFER_BYTES:
        raise OfferError(f"the SDP offer is larger than {MAX_OFFER_BYTES} bytes")
    if not sdp.lstrip().startswith("v=0"):
        raise OfferError("the body is not an SDP offer (it must start with 'v=0')")
    try:
        description = SessionDescription.parse(sdp)
    except Exception as exc:  # noqa: BLE001 - see the module docstring: any of them means malformed
        raise OfferError(f"the SDP offer is malformed: {type(exc).__name__} {exc}"[:300]) from exc
    if not description.media:
        raise OfferError("the SDP offer has no media sections (m= lines)")
    _check_bundle(description)
    for media in description.media:
        if media.port != 0:
            _check_transport(media)
    audio = _directions(description, "audio")
    video = _directions(description, "video")
    return OfferShape(
        sends_audio=any(d in ("sendrecv", "sendonly") for d in audio),
        receives_audio=any(d in ("sendrecv", "recvonly") for d in audio),
        receives_video=any(d in ("sendrecv", "recvonly") for d in video),
    )


def _check_bundle(description: SessionDescription) -> None:
    """A BUNDLE group may only name m-lines the offer has (aiortc fails late, in createAnswer)."""
    mids = {m.rtp.muxId for m in description.media}
    for group in description.group:
        missing = [mid for mid in group.items if mid not in mids]
        if missing:
            raise OfferError(f"the {group.semantic} group names m-lines the offer lacks: {missing}")


def _check_transport(media: MediaDescription) -> None:
    """Checks what aiortc needs later, in tasks whose errors no handler sees.

    ICE credentials, a DTLS fingerprint, and candidate ports a socket can send to.
    """
    if media.ice is None or not media.ice.usernameFragment or not media.ice.password:
        raise OfferError(f"the {media.kind} m-line has no a=ice-ufrag / a=ice-pwd")
    if media.dtls is None or not media.dtls.fingerprints:
        raise OfferError(f"the {media.kind} m-line has no DTLS a=fingerprint")
    for candidate in media.ice_candidates:
        if not 0 < candidate.port < 65536:
            raise OfferError(f"an ICE candidate has port {candidate.port}")
        if candidate.protocol.lower() not in ("udp", "tcp"):
            raise OfferError(f"an ICE candidate has transport {candidate.protocol[:20]!r}")


def check_publisher_offer(sdp: str) -> OfferShape:
    """A WHIP offer must send audio: the voice is what drives the avatar."""
    shape = parse_offer(sdp)
    if not shape.sends_audio:
        raise OfferError(
            "the offer sends no audio; WHIP needs an audio m-line (sendrecv or sendonly)"
        )
    return shape


def check_viewer_offer(sdp: str) -> OfferShape:
    """A WHEP offer must receive audio or video."""
    shape = parse_offer(sdp)
    if not (shape.receives_audio or shape.receives_video):
        raise OfferError("the offer receives neither audio nor video (expected recvonly m-lines)")
    return shape
