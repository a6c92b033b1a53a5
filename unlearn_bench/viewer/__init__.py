"""``unlearn-bench view``: run records -> a self-contained static site (HTML, JS, JSON)."""
