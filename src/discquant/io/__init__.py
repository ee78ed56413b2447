"""Stage 1: turn a clinical study (DICOM folder, NIfTI files, BIDS subject) into a Study."""
