"""The tables and figures of each chapter of the book, one module per chapter notebook (the
notebooks call them; no logic lives only in a notebook), and ``analysis_set``, the preamble the
results chapters share."""
