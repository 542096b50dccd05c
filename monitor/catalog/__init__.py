"""What to probe: targets.yaml validated into frozen per-kind targets, with located errors."""
