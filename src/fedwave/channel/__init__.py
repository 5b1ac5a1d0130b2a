"""fedwave.channel."""
