"""Training, evaluation and data tools for polypview's networks."""
