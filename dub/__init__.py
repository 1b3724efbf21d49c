"""Dubbing: re-lip existing footage to new audio with the live pipeline's motion model and renderer.

``engine.dub_file`` is the whole job (``lipstream dub``, ``cli.py``); ``jobs.py`` runs it for
``POST /api/dub`` in a low-priority child process. Nothing is imported here, so that the command
line's parser stays cheap to build.
"""
