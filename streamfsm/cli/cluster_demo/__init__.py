"""``streamfsm demo-cluster``: three cluster members, the holder killed, a follower takes over.

``nodes`` drives ``streamfsm node`` subprocesses and reads their event lines; ``play`` is the
scenario and its report; ``app`` registers the command.
"""

__all__: list[str] = []
