"""The LLM stage (paper 4.2.2–4.2.3, 4.5.2): ``rgenima build-demo-llm``, ``rgenima finetune``, ``rgenima predict``.

The library lives in ``rgenima_lib.models.mllm`` / ``prompting`` / ``demo_llm`` and
``rgenima_lib.train.finetune`` / ``predict``; this package only wires the CLI.
"""
