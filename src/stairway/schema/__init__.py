"""Schema changes: reading them, checking their phase, recording and applying them."""
