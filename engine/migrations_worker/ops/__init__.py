"""What operators and machines read: the status API and the metrics."""
