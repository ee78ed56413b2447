"""Stage: grade."""
