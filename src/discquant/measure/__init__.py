"""Stage 4: turn masks and maps into per-disc numbers (ADC, water, T2, geometry)."""
