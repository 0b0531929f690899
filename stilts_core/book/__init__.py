"""The Jupyter Book: building it, and the tables and figures its chapters show."""
