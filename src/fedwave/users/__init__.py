"""fedwave.users."""
