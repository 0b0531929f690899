"""The phases the notebooks run: their parameters and the work of each phase."""
