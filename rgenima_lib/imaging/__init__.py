"""Imaging stage (paper 4.2.1, 4.4.1): FreeSurfer recon-all, ROI patches, whole-brain input, imaging QC."""
