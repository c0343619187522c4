"""A realistic synthetic England-like registered population (practices, people, conditions, activity)."""
