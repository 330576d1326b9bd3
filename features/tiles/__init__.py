"""Day tiles: per-(lead, day, event type) partials kept by day, merged into windows by prefix sums."""
