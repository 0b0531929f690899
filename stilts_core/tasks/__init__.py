"""The registry: declared tasks and benchmarks, the official metrics they are scored with, and the
languages of XTREME-R. Everything downstream looks these up by name."""
