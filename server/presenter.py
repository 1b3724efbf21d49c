"""``lipstream present``: the server, with one speaker on a channel fed by the local microphone.

For a presenter in front of OBS: the avatar speaks with the machine's own microphone, and the
viewer URL goes into an OBS browser source. The speaker is an ordinary session on the channel
(viewers and events as for any other), whose audio track is the microphone.
"""

from __future__ import annotations

import logging

from aiohttp import web

from .http.signaling import end_session
from .media.ingest import pump_track
from .media.microphone import MicrophoneTrack
from .media.session import AvatarSession
from .state import ServerState
from .tasks import TaskOwner

logger = logging.getLogger(__name__)


def add_presenter(app: web.Application, channel: str, device: int | str | None) -> None:
    """Makes ``app`` start a microphone speaker on ``channel`` once its avatar is ready."""
    owner = TaskOwner("Presenter")

    async def start(app: web.Application) -> None:
        state = app[ServerState.KEY]
        avatar_id = state.avatars.default_id
        if avatar_id is None:
            raise RuntimeError("the default avatar did not load")
        track = MicrophoneTrack(device)
        state.sessions.reserve(channel)
        session = state.new_session(state.new_id(), channel, avatar_id)
        state.sessions.add(session)
        state.join(session)
        state.metrics.sessions.set(len(state.sessions.by_id))
        owner.start("microphone", _present(state, session, track))
        logger.info("Presenter on channel %r from device %r", channel, device)

    async def stop(app: web.Application) -> None:
        await owner.cancel_all()

    app.on_startup.append(start)
    app.on_shutdown.insert(0, stop)


async def _present(state: ServerState, session: AvatarSession, track: MicrophoneTrack) -> None:
    reason = "the microphone stopped"
    try:
        reason = await pump_track(session, track)
    finally:
        track.stop()
        await end_session(state, session, reason)
