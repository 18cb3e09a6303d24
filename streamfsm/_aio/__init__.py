"""The asyncio edge: the WebSocket transport, the session pump, dispatch to callbacks, the journal
file.

Everything that awaits, opens a socket or writes a file on the client side lives here, driven by
the sans-I/O core in :mod:`streamfsm._core`. Private: the public face is :mod:`streamfsm`.
"""
