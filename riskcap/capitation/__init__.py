"""Need groups, Year of Care tariffs, practice budgets, scenarios and settlement."""
