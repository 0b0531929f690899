"""Every task the registry knows, one module per role: English training sources, the
intermediate tasks of phase (ii) and their mixture, the XTREME and XTREME-R target tasks of
phase (iii), the retrieval tasks, and the text of the continued-MLM variant. Each module lists
its ``DECLARED`` tasks; :mod:`stilts_core.tasks.registry` collects them."""
