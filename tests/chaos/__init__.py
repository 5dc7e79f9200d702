"""The fault-injection harness: private services, a fault schedule, a restartable load, and the
invariants an online migration must keep whatever happens to it."""
