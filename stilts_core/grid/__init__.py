"""Grids: many runs declared in one config, planned in dependency order, checked before they start,
projected in GPU hours, and run locally or on Slurm."""
