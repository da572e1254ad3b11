"""``rgenima`` subcommands of the LLM stage: build-demo-llm, plan, finetune, predict.

``plan`` checks, from the model's ``config.json`` alone, that fine-tuning fits the GPUs
it asks for (rgenima_lib.train.resource_plan), and stops with the fix when it does not.

``finetune`` is launched by ``torchrun --nproc_per_node N`` (N = the job's GPUs)
with ``--deepspeed config/deepspeed/zero3.json``; without them it runs a plain
single-process loop (the CPU demo). Only rank 0 writes files.
"""

from __future__ import annotations

# The library modules these commands call import torch and transformers (seconds): they are imported inside
# the command functions, so that every other subcommand, and the parser itself, starts without paying for it.

import argparse
import logging
import warnings

from rgenima_lib.cli.common import add_snp_text_args, quiet_libraries, require_inputs
from rgenima_lib.errors import InputDataError
from rgenima_lib.io import atomic_output, load_settings, read_tsv, write_json, write_tsv

log = logging.getLogger("rgenima")


def _quiet_deepspeed() -> None:
    # DeepSpeed's deprecation chatter from torch.distributed would drown the rule's log.
    warnings.filterwarnings("ignore", category=FutureWarning, module="torch.distributed")


def cmd_build_demo_llm(args: argparse.Namespace) -> None:
    from rgenima_lib.models.demo_llm import DEMO_NOTE, build_demo_llm

    quiet_libraries()
    genes = read_tsv(args.gene_panel)["gene"].astype(str).tolist() if args.gene_panel else []
    with atomic_output(args.output, directory=True) as tmp:
        build_demo_llm(tmp, arch=args.arch, hidden_size=args.hidden_size, n_layers=args.layers, n_heads=args.heads,
                       n_kv_heads=args.kv_heads, intermediate_size=args.intermediate_size, vocab_size=args.vocab_size,
                       seed=args.seed, gene_names=genes)
    log.info("demo LLM (%s; %s) -> %s", args.arch, DEMO_NOTE, args.output)


def cmd_plan(args: argparse.Namespace) -> None:
    import pandas as pd

    from rgenima_lib.train.resource_plan import (ModelShape, PlanSettings, check_plan, make_plan,
                                                 require_attn_implementation)

    require_inputs(args.model, args.samples)
    require_attn_implementation(args.attn_implementation)
    train_samples = None
    if args.samples:
        # A pipeline output: the fold's samples table; its train side is one epoch.
        train_samples = int((read_tsv(args.samples)["side"] == "train").sum())
    settings = PlanSettings.from_sections(load_settings(args.train), load_settings(args.plan), gpus=args.gpus,
                                          attn_implementation=args.attn_implementation,
                                          train_samples=train_samples)
    config_json = args.model if args.model.endswith(".json") else f"{args.model}/config.json"
    plan = make_plan(ModelShape.from_model_folder(args.model), settings, model=args.name or args.model)
    table = pd.DataFrame(plan.rows())
    print(table.to_string(index=False))
    hours = f"{plan.hours_per_epoch:.1f} h per epoch" if plan.hours_per_epoch is not None else "CPU run"
    log.info("plan %s: %.1f GB per GPU of %s (%s), %d tokens and %d steps per epoch, %s", plan.model, plan.total_gb,
             f"{settings.gpu_memory_gb:g} GB" if settings.gpus else "no GPU", "fits" if plan.fits else "DOES NOT FIT",
             plan.tokens_per_epoch, plan.steps_per_epoch, hours)
    # The figures are written first: a refused plan still shows where the memory goes.
    if args.output_tsv:
        write_tsv(table, args.output_tsv)
    check_plan(plan, path=config_json)
    if args.output_json:
        write_json(plan.to_json(), args.output_json)


def cmd_finetune(args: argparse.Namespace) -> None:
    import pandas as pd
    import torch.distributed as dist

    from rgenima_lib.data.prompt_samples import fold_genomes, load_prompt_samples
    from rgenima_lib.models.embedding_cache import load_embeddings
    from rgenima_lib.models.mllm import BASE_MODEL_FIX, MLLMConfig, check_model_folder, load_llm_tokenizer
    from rgenima_lib.train.finetune import FinetuneConfig, dist_info, finetune
    from rgenima_lib.train.resource_plan import require_attn_implementation

    quiet_libraries()
    _quiet_deepspeed()
    require_inputs(args.base, args.samples, args.imputed, args.snps, args.embeddings, args.deepspeed)
    # Before any data is read: a wrong --base is the most common first-run mistake with real weights.
    check_model_folder(args.base, fix=BASE_MODEL_FIX)
    require_attn_implementation(args.attn_implementation)
    settings = load_settings(args.settings)
    cfg = FinetuneConfig.from_dict({**settings, **({"max_steps": args.max_steps} if args.max_steps else {}),
                                    "seed": args.seed})
    visual_dim = int(load_embeddings(args.embeddings)[1].shape[-1]) if args.embeddings else None
    gene_snps = fold_genomes(args.imputed, args.snps, "tokens").gene_snps if args.gene_input == "tokens" else None
    mcfg = MLLMConfig(visual_dim=visual_dim, connector=args.connector, lora=args.lora, gene_input=args.gene_input,
                      gene_snps=gene_snps, attn_implementation=args.attn_implementation)
    # The text is written for the base model's tokenizer, which the checkpoint keeps: predict picks the same.
    samples = load_prompt_samples(args.samples, "train", args.imputed, args.snps, args.embeddings, limit=args.limit,
                                  gene_input=args.gene_input, separator=args.snp_separator,
                                  tokenizer=load_llm_tokenizer(args.base), packing=args.snp_packing)
    log.info("finetune: %d training samples, genome as %s, visual dim %s, %s", len(samples), args.gene_input,
             visual_dim,
             f"DeepSpeed {args.deepspeed}" if args.deepspeed else "plain PyTorch loop")
    result = finetune(args.base, samples, args.output, mcfg, cfg, deepspeed_config=args.deepspeed)
    if dist_info()[0] == 0:
        if args.history:
            write_tsv(pd.DataFrame(result.history), args.history)
        if args.summary:
            write_json(result.summary, args.summary)
    log.info("finetune: %d steps, final loss %.4f, %.0f tokens/s -> %s", result.summary["steps"],
             result.summary["final_loss"], result.summary["tokens_per_s"] or 0, args.output)
    if dist.is_available() and dist.is_initialized():
        # Every rank waits for rank 0's files, then leaves the group in order (gloo can abort otherwise).
        dist.barrier()
        dist.destroy_process_group()


def cmd_predict(args: argparse.Namespace) -> None:
    import torch

    from rgenima_lib.data.prompt_samples import load_prompt_samples
    from rgenima_lib.models.demo_llm import model_note
    from rgenima_lib.models.mllm import RGenIMA
    from rgenima_lib.train.predict import escape_text, predict, prediction_summary

    quiet_libraries()
    require_inputs(args.checkpoint, args.samples, args.imputed, args.snps, args.embeddings)
    torch.manual_seed(0)
    dtype = torch.bfloat16 if (args.bf16 and torch.cuda.is_available()) else torch.float32
    model = RGenIMA.from_checkpoint(args.checkpoint, dtype=dtype)
    if torch.cuda.is_available():
        model.to("cuda")
    if (model.connector is None) != (args.embeddings is None):
        raise InputDataError("the checkpoint and --embeddings disagree on whether the model sees images.",
                             path=args.checkpoint, fix="pass the embeddings the model was fine-tuned with.")
    samples = load_prompt_samples(args.samples, "test", args.imputed, args.snps, args.embeddings, limit=args.limit,
                                  gene_input=model.mllm_config.gene_input, separator=args.snp_separator,
                                  tokenizer=model.tokenizer, packing=args.snp_packing)
    table = predict(model, samples, batch_size=args.batch_size, generate=not args.no_generate)
    table["generated_text"] = table["generated_text"].map(escape_text)
    write_tsv(table, args.output)
    summary = {**prediction_summary(table), "checkpoint": str(args.checkpoint),
               "demo": bool(model_note(args.checkpoint)), "note": model_note(args.checkpoint)}
    if args.summary:
        write_json(summary, args.summary)
    log.info("predict: %d samples, scoring accuracy %s, generation accuracy %s, %d unparseable%s -> %s",
             summary["n"], summary["scoring_accuracy"], summary["generation_accuracy"], summary["n_unparseable"],
             f" ({summary['note']})" if summary["note"] else "", args.output)


def _data_args(p) -> None:
    p.add_argument("--samples", required=True, help="datasets/{config}/fold{k}/samples.tsv")
    p.add_argument("--imputed", required=True, help="the fold's imputed genotypes (fold{k}.npz)")
    p.add_argument("--snps", required=True, help="snps.tsv")
    p.add_argument("--embeddings", help="the fold's visual token cache (omit for the LLM SNP-only model)")
    p.add_argument("--limit", type=int, help="first N samples only (smoke runs)")
    add_snp_text_args(p)


def register(sub) -> None:
    """Add this stage's subcommands to the ``rgenima`` parser."""
    p = sub.add_parser("build-demo-llm", help="build the small random-init demo LLM + tokenizer (no download)")
    p.add_argument("--output", required=True, help="model folder (from_pretrained-loadable)")
    p.add_argument("--arch", choices=["qwen2", "llama"], default="qwen2")
    p.add_argument("--hidden-size", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--intermediate-size", type=int, default=512)
    p.add_argument("--vocab-size", type=int, default=2000)
    p.add_argument("--gene-panel", help="config/gene_panel.tsv: gene symbols join the tokenizer's corpus")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_build_demo_llm)

    p = sub.add_parser("plan", help="per-GPU memory and time per epoch of fine-tuning; refuses what cannot fit")
    p.add_argument("--model", required=True, help="the base LLM folder (or its config.json)")
    p.add_argument("--name", help="label of the model in the output (default: --model)")
    p.add_argument("--train", required=True, help="the config's train section: inline JSON or a YAML/JSON file")
    p.add_argument("--plan", required=True, help="the config's llm.plan section: inline JSON or a YAML/JSON file")
    p.add_argument("--gpus", type=int, required=True, help="GPUs of one fine-tuning job (0: CPU, nothing to check)")
    p.add_argument("--attn-implementation", default="sdpa", help="sdpa, eager or flash_attention_2")
    p.add_argument("--samples", help="a fold's samples.tsv: its train rows replace llm.plan.train_samples")
    p.add_argument("--output-tsv", help="TSV: GB per GPU of each memory term (written even when refused)")
    p.add_argument("--output-json", help="JSON: the whole plan (written only when it fits)")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("finetune", help="fine-tune connector + LLM (torchrun + DeepSpeed ZeRO-3, or plain on CPU)")
    p.add_argument("--base", required=True, help="local LLM folder (real weights or the demo LLM)")
    _data_args(p)
    p.add_argument("--connector", choices=["linear", "mlp"], default="linear")
    p.add_argument("--lora", action="store_true", help="LoRA adapters instead of full fine-tuning")
    p.add_argument("--gene-input", choices=["text", "tokens"], default="text",
                   help="the genome as the paper's SNP text, or one token per gene (a departure; docs/departures.md)")
    p.add_argument("--attn-implementation", default="sdpa", help="sdpa, eager or flash_attention_2")
    p.add_argument("--settings", help="the config's train section: inline JSON or a YAML/JSON file")
    p.add_argument("--deepspeed", help="DeepSpeed JSON (config/deepspeed/zero3.json); omit for the plain loop")
    p.add_argument("--max-steps", type=int)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--output", required=True, help="checkpoint folder")
    p.add_argument("--history", help="TSV: loss per optimizer step")
    p.add_argument("--summary", help="JSON: steps, tokens/s, precision, world size")
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("predict", help="answer scoring (class probabilities) + strict greedy generation")
    p.add_argument("--checkpoint", required=True)
    _data_args(p)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--no-generate", action="store_true", help="scoring only")
    p.add_argument("--bf16", action="store_true", help="bf16 on CUDA")
    p.add_argument("--output", required=True, help="predictions TSV")
    p.add_argument("--summary", help="JSON: accuracies, unparseable count, demo note")
    p.set_defaults(func=cmd_predict)
