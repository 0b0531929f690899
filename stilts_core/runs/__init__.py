"""Runs: one phase run's identity, folder, lock, attempts and compute record; the tidy result rows
it writes; and the processes a command starts, which end with it."""
