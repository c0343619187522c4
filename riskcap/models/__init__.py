"""Emergency-admission risk models (CPM-style logistic, LightGBM) and the next-year cost model."""
