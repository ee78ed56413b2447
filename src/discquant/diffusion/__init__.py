"""Stage: diffusion."""
