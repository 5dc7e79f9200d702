"""A run's life: claim a batch, do it, hold, set bad rows aside, and the controls and gates over it."""
