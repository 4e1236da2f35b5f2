"""The simulation: engine, sessions and tasks, their scripts, results and the store."""
