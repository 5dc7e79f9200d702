"""Fleet rollouts: one deploy stage across many databases, in waves, the canary first."""
