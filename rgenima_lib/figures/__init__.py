"""The paper's Figures 1–2, drawn from the bootstrap tables of the attention dumps (never from a model)."""
