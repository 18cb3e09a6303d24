"""``streamfsm demo``: a pricing service on the embedded simulator while faults are injected.

``app`` is the command line, ``play`` one run, ``settings`` its timings, ``faults`` what is
played, ``progress`` what the controller did, ``script`` the fault player, ``view`` the plain
output and ``live_view`` the ``rich`` view (the only module that needs the ``demo`` extra).
"""

__all__: list[str] = []
