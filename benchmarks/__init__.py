"""Speed measurements behind ``make bench`` (ratios against in-process baselines)."""
