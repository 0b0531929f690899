"""Reading data: one split of one task in one language (``loading``) from the hub, a local root,
the release files or the shared data pack (``sources``, ``readers``, ``pack``), in its format's
canonical schema (``canonical``); the retrieval tasks' own release formats (``releases``); the
bundled fixtures; and the features each task format feeds a model (``features``)."""
