"""The deploy step: migrate_online's apply loop, the plan, what each statement locks, one deploy at a time."""
