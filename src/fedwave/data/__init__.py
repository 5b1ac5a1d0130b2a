"""fedwave.data."""
