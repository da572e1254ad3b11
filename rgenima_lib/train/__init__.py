"""Training (paper 4.5.2): the shared supervised loop (``classifier``) used by stage-1 encoder
pretraining (``encoder``) and the Table 1 baselines. Stage-2 LLM fine-tuning lives with the
multimodal LLM (``models.mllm``)."""
