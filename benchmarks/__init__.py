"""`make bench`: throughput and memory figures, each next to a raw floor from the same run."""
