"""fedwave.sim."""
