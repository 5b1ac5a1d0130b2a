"""fedwave.engine."""
