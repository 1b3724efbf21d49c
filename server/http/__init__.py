"""The HTTP side of one server process: what a client talks to.

``app`` (routes, pages, config, uploads) -> ``guard`` (tokens, origins, bounded bodies) ->
``signaling`` (WHIP/WHEP offers, checked by ``sdp_check``; STUN/TURN from ``ice``) and
``websocket`` (PCM pushed by TTS engines).
"""
