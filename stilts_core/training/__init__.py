"""Training: the ``Trainer`` path every phase-(ii)/(iii) run and the dual encoder use."""
