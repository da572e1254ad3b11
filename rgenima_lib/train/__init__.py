"""Training (paper 4.5.2): the shared supervised loop (``classifier``) used by stage-1 encoder
pretraining (``encoder``) and the Table 1 baselines; stage-2 LLM fine-tuning and answer scoring
(``finetune``, ``predict``) belong to the multimodal LLM."""
