"""The data jobs of the schema fixes, one module each; importing registers them."""
