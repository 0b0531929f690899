"""Reading data: the hub, a local root or the shared data pack (``loading``, ``pack``), the bundled
fixtures, and the features each task format feeds a model (``features``)."""
