"""`make bench`: what the architecture buys, measured as ratios against baselines in one run."""
