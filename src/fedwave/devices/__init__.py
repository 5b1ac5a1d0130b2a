"""fedwave.devices."""
