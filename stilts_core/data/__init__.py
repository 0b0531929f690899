"""Reading data: one split of one task in one language (``loading``) from the hub, a local root,
the release files or the shared data pack (``sources``, ``readers``, ``pack``), in its format's
canonical schema (``canonical``, through the format's converter in :mod:`stilts_core.formats`); the
retrieval tasks' own release formats (``releases``); and the bundled fixtures."""
