"""Side-by-side benchmarks: streamfsm against alpaca-py and bare read loops (``make bench``)."""
