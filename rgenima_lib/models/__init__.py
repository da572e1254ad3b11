"""Models (paper 4.2, 4.5.1): the ROI-wise vision transformer (RiT), the Med3D whole-brain
encoder, the Table 1 baselines (MLP, BERT, BERT + image encoder with concatenation † or
cross-modal attention ‡ fusion), the frozen-token cache, and the multimodal LLM.

Submodules are imported on demand (``from rgenima_lib.models.rit import RiT``) so that a
stage needing one model never pays for importing the others.
"""
