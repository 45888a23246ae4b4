"""HTTP routes (Chalice blueprints)."""
