"""Validation of WHIP/WHEP offers before any connection is created, with reasons a client can act
on."""

from __future__ import annotations

from dataclasses import dataclass

from aiortc.sdp import SessionDescription

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
    """Parses ``sdp`` and says what it asks for; raises ``OfferError`` if it is not a usable
    offer."""
    if not sdp.strip():
        raise OfferError("the request body is empty; expected an SDP offer")
    if len(sdp.encode()) > MAX_OFFER_BYTES:
        raise OfferError(f"the SDP offer is larger than {MAX_OFFER_BYTES} bytes")
    if not sdp.lstrip().startswith("v=0"):
        raise OfferError("the body is not an SDP offer (it must start with 'v=0')")
    try:
        description = SessionDescription.parse(sdp)
    except (ValueError, IndexError, KeyError) as exc:
        raise OfferError(f"the SDP offer is malformed: {exc}") from exc
    if not description.media:
        raise OfferError("the SDP offer has no media sections (m= lines)")
    audio = _directions(description, "audio")
    video = _directions(description, "video")
    return OfferShape(
        sends_audio=any(d in ("sendrecv", "sendonly") for d in audio),
        receives_audio=any(d in ("sendrecv", "recvonly") for d in audio),
        receives_video=any(d in ("sendrecv", "recvonly") for d in video),
    )


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
