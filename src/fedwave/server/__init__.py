"""fedwave.server."""
