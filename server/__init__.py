"""The lipstream server, by role.

``cli`` is the command; ``options`` and ``state`` are what a running app holds (a ``registry`` of
sessions, ``avatars``, ``metrics``, owned ``tasks``). Three parts: ``media/`` (a session's media
path), ``http/`` (what clients talk to) and ``processes/`` (the front and its workers).
``offline`` renders a file with the same pipeline and no web stack.
"""
