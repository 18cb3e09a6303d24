"""Developer tools: the state document generator, the soak run. Not part of the wheel."""
