"""Evaluation: predictions scored with the official metrics, retrieval and alignment measures, and
XTREME submission files."""
