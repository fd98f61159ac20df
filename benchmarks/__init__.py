"""`make bench`: throughput and memory figures, each next to a raw floor measured in the same run."""
