"""Stage 2: diffusion. ADC maps from diffusion-weighted images.

- :mod:`discquant.diffusion.adc`: ``AdcModel(bvals, method=...).fit(dwi) -> AdcFit``
  (two-point, OLS, WLS, NLLS; invalid-voxel rules; chunked and threaded).
- :mod:`discquant.diffusion.shells`: b-value shells and the trace image.
- :mod:`discquant.diffusion.noise`: Rician noise-floor correction and σ from background.
- :mod:`discquant.diffusion.scanner`: the integer ADC map a scanner would store.
- :mod:`discquant.diffusion.writer`: ADC NIfTI + JSON sidecar (``discquant adc`` and ``analyze``).
- :mod:`discquant.diffusion.stage`: ``run_diffusion``, the diffusion stage of
  :func:`discquant.pipeline.analyze` (ADC map, b≈0 image, noise σ and SNR, scanner check).

Method, rules, validation and speed: ``docs/adc.md``.
"""
