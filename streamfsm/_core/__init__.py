"""The sans-I/O core: the transition table, the connection model, the wire codec, the policies.

Nothing here imports ``asyncio``, ``websockets`` or ``time``, opens a socket or a file, or reads a
clock: bytes, events and ``now`` come in; events, bytes and commands go out. A test checks it.
Private: the public face is re-exported from :mod:`streamfsm`.
"""
