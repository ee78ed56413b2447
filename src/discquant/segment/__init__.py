"""Stage: segment."""
