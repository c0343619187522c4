"""Click commands, one module per area; each is thin and calls the core."""
