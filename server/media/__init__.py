"""The media path of one session, in the order media flows.

``ingest`` (incoming voice: resampling, reader loops, silence) -> ``session`` (the media clock: the
worker trip through the motion pipeline and the renderer) -> ``frames`` (pose to video frame) ->
``tracks`` (the outgoing avatar video and re-timed voice). ``low_latency`` and ``aiortc_tuning``
adjust aiortc's receive buffer and VP8 encoder for this path.
"""
