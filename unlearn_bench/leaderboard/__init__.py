"""Run records -> leaderboards: rows, formats, plots, published comparisons, regression checks."""
