"""Stage: phantom."""
