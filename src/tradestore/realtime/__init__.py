"""Redis services: rate limits, sessions, strategy state, notifications."""
