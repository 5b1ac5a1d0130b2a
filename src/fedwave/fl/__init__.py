"""The federated-learning run: the driver the clock calls, the runner, summaries."""
