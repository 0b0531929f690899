"""Analysis of collected results: morphology indices, gains, mixed-effects statistics, result sets
and the published claims."""
