"""One run: the loop and what makes it fast (runtime, prefetch, background forward, evaluation)."""
