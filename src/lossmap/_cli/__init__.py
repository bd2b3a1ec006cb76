"""Command groups of the ``lossmap`` CLI, one module per group."""
