"""Can the demo LLM learn genes from its genome input? SNP text against gene tokens (docs/models.md).

A positive control of the model side: labels are set from the genotypes alone, so
a model that reads its genome input can reach well above chance; one that does
not answers the majority class. Two tasks on genotypes simulated for a subset of
the panel (``simulate_panel_genotypes``; valid SNPs only, 2p-imputed):

- ``apoe``: the stage is the APOE e4 count (rs429358: 0 -> NC, 1 -> MCI,
  2 -> AD; Bayes accuracy 1.0);
- ``liability``: a planted few-gene liability (``genetic_liability``, one
  driver SNP per causal gene, small noise) cut into four equal stages
  (``stages_from_liability``; chance 0.25).

Three genome inputs: ``text`` (the paper's SNP text, ``serialize_genome``,
a space between genotypes), ``text_nosep`` (the same without the spaces: one
token per SNP under the Qwen2 pre-tokenizer) and ``tokens`` (one token per
gene, ``llm.gene_input: tokens``). Each run fine-tunes a random-init demo LLM
(plain loop, fp32, one thread), scores held-out subjects (balanced accuracy of
the answer scoring) and ranks the genes by gradient x input: per token, the
gradient of the true answer's NLL times the input embedding, summed over the
hidden size, its absolute value summed over a gene's tokens, averaged over the
test subjects.

``run(out_dir, full=False)`` runs a small grid in about two minutes of one CPU;
``full=True`` the larger one recorded in docs/models.md. One configuration:
``python -m rgenima_lib.bench.bench_gene_learning --task liability --genome tokens --steps 400``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rgenima_lib.vocabulary import STAGES

REPO = Path(__file__).resolve().parents[2]
GENOMES = ("text", "text_nosep", "tokens")
TASKS = ("apoe", "liability")
CAUSAL_GENES = {"BIN1": 1.0, "CLU": 1.0, "PICALM": 1.0, "CR1": 1.0, "ABCA7": 1.0}
"""The planted liability's genes (one driver SNP each), not APOE: the text form of APOE is first in the prompt."""


@dataclass
class Cohort:
    """Simulated genotypes of one experiment.

    Attributes
    ----------
    dosage : float32[n_subjects, n_snps]
        2p-imputed minor-allele dosage, columns in text order (gene block, position).
    snps : DataFrame, n_snps rows
        ``snps.tsv``-like: block, gene, snp, a1, a2.
    stages : str[n_subjects]
    causal : list of str
        The genes the labels depend on.
    """

    dosage: np.ndarray
    snps: pd.DataFrame
    stages: np.ndarray
    causal: list[str]


def simulate_cohort(task: str, n_subjects: int, n_genes: int, n_variants: int, noise_sd: float,
                    seed: int) -> Cohort:
    """Genotypes of the first ``n_genes`` panel genes and labels set from them (see the module docstring)."""
    from rgenima_lib.io import read_tsv
    from rgenima_lib.synthetic.genotypes import simulate_panel_genotypes
    from rgenima_lib.synthetic.truth import EPSILON4_SNP, choose_driver_snps, genetic_liability, stages_from_liability

    rng = np.random.default_rng(seed)
    panel = read_tsv(REPO / "config" / "gene_panel.tsv")
    panel = panel.iloc[:n_genes] if n_genes < len(panel) else panel
    raw, variants = simulate_panel_genotypes(panel, n_subjects, n_variants, rng)
    keep = (variants["planted"] == "").to_numpy()
    raw, variants = raw[:, keep], variants[keep].reset_index(drop=True)
    order = np.lexsort((variants["pos"].to_numpy(), variants["gene"].map(
        {g: i for i, g in enumerate(panel["gene"])}).to_numpy()))
    raw, variants = raw[:, order], variants.iloc[order].reset_index(drop=True)
    p = np.array([np.mean(c[c >= 0]) / 2 for c in raw.T])
    dosage = np.where(raw < 0, np.floor(2 * p + 0.5)[None], raw).astype(np.float32)
    if task == "apoe":
        e4 = dosage[:, variants.index[variants["snp"] == EPSILON4_SNP][0]]
        stages, causal = np.array(["NC", "MCI", "AD"])[e4.astype(int)], ["APOE"]
    elif task == "liability":
        causal_genes = {g: b for g, b in CAUSAL_GENES.items() if g in set(variants["gene"])}
        liability = genetic_liability(raw, variants, causal_genes, choose_driver_snps(variants, list(causal_genes)),
                                      noise_sd, rng)
        quarter = {s: n_subjects // 4 for s in STAGES}
        quarter["AD"] += n_subjects - sum(quarter.values())
        stages, causal = stages_from_liability(liability, quarter), list(causal_genes)
    else:
        raise ValueError(f"task must be one of {TASKS}, not {task!r}")
    block = variants["gene"].map({g: i for i, g in enumerate(pd.unique(variants["gene"]))}).to_numpy()
    snps = pd.DataFrame({"block": block, "gene": variants["gene"], "snp": variants["snp"], "a1": variants["a1"],
                         "a2": variants["a2"]})
    return Cohort(dosage, snps, stages, causal)


def prompt_samples(cohort: Cohort, rows: np.ndarray, genome: str):
    """PromptSample per subject row in canonical gene order, the genome in form ``genome``; and the gene names."""
    from rgenima_lib.genetics.gene_tokens import GeneTokenTexts
    from rgenima_lib.genetics.serialize import GenomeLayout, gene_blocks, join_blocks
    from rgenima_lib.models.prompting import PromptSample

    layout = GenomeLayout.from_snps(cohort.snps)
    order = np.arange(layout.n_genes)
    samples, spans = [], []
    tokens = GeneTokenTexts(cohort.dosage, [f"s{i}" for i in range(len(cohort.dosage))], layout)
    for i in rows:
        if genome == "tokens":
            g = tokens(f"s{i}", -1)
            samples.append(PromptSample(f"s{i}", g.text, cohort.stages[i], genes=g.genes))
        else:
            blocks = gene_blocks(cohort.dosage[i], layout)
            if genome == "text_nosep":
                blocks = [b.split(": ")[0] + ": " + b.split(": ")[1].replace(" ", "") for b in blocks]
            g = join_blocks(blocks, layout.genes, order)
            samples.append(PromptSample(f"s{i}", g.text, cohort.stages[i]))
        spans.append(g.spans)
    return samples, spans, list(layout.genes), tokens.gene_snps


def balanced_accuracy(truth, predicted) -> float:
    """Mean recall over the stages present in ``truth``."""
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    return float(np.mean([(predicted[truth == s] == s).mean() for s in np.unique(truth)]))


def gradient_x_input(model, samples, spans, genes, batch_size: int = 16) -> np.ndarray:
    """float64[n_genes]: mean over samples of sum over a gene's tokens of |grad(NLL) . embedding|.

    The NLL is that of each sample's true answer; the embeddings are the
    spliced ones (a gene token's is its dosage token).
    """
    import torch

    from rgenima_lib.attribution.token_map import gene_of_tokens
    from rgenima_lib.models.mllm import answer_nll
    from rgenima_lib.models.prompting import PromptCollator, encode_prompt

    collate = PromptCollator(model.tokenizer, with_labels=True)
    gene_index = {g: i for i, g in enumerate(genes)}
    total = np.zeros(len(genes))
    model.eval()
    for start in range(0, len(samples), batch_size):
        chunk, chunk_spans = samples[start:start + batch_size], spans[start:start + batch_size]
        batch = collate(chunk)
        embeds = model.embed_inputs(batch["input_ids"], None, batch.get("gene_dosages"), batch.get("gene_ids"))
        embeds = embeds.detach().requires_grad_(True)
        out = model.causal_lm(inputs_embeds=embeds, attention_mask=batch["attention_mask"],
                              position_ids=batch["position_ids"])
        answer_nll(out.logits, batch["labels"]).sum().backward()
        per_token = (embeds.grad * embeds).sum(-1).abs().detach().numpy()  # [B, T]
        width = per_token.shape[1]
        for b, (s, sp) in enumerate(zip(chunk, chunk_spans)):
            enc = encode_prompt(model.tokenizer, s.genome_text, False, s.stage, with_offsets=True)
            of = gene_of_tokens(enc.offsets, enc.genome_char_span[0], sp, gene_index)
            pos = np.flatnonzero(of >= 0)
            np.add.at(total, of[pos], per_token[b, width - len(enc.input_ids) + pos])
    return total / len(samples)


def run_one(task: str = "liability", genome: str = "tokens", *, arch: str = "qwen2", hidden_size: int = 128,
            n_layers: int = 2, lr: float = 1e-3, steps: int = 200, batch_size: int = 8, n_train: int = 400,
            n_test: int = 200, n_genes: int = 20, n_variants: int = 250, noise_sd: float = 0.3,
            seed: int = 0) -> dict:
    """One fine-tuning run; balanced accuracy, causal genes' gradient x input ranks, CPU seconds.

    Parameters
    ----------
    task : {"apoe", "liability"}
    genome : {"text", "text_nosep", "tokens"}
    arch, hidden_size, n_layers
        The demo LLM (``build_demo_llm``).
    lr, steps, batch_size
        AdamW learning rate, optimizer steps, samples per step.
    n_train, n_test : int
        Distinct subjects (one canonical sample each).
    n_genes, n_variants : int
        Panel subset and simulated SNPs (valid ones are kept: ~80 %).
    noise_sd : float
        Liability noise (``liability`` only).
    seed : int
    """
    import torch

    from rgenima_lib.models.demo_llm import build_demo_llm
    from rgenima_lib.models.mllm import MLLMConfig
    from rgenima_lib.train.finetune import FinetuneConfig, finetune
    from rgenima_lib.train.predict import predict

    torch.set_num_threads(1)
    cpu0 = time.process_time()
    cohort = simulate_cohort(task, n_train + n_test, n_genes, n_variants, noise_sd, seed)
    train, train_spans, genes, gene_snps = prompt_samples(cohort, np.arange(n_train), genome)
    test, test_spans, _, _ = prompt_samples(cohort, np.arange(n_train, n_train + n_test), genome)
    with tempfile.TemporaryDirectory() as tmp:
        base = build_demo_llm(Path(tmp) / "llm", arch=arch, hidden_size=hidden_size, n_layers=n_layers,
                              intermediate_size=4 * hidden_size, seed=seed, gene_names=genes)
        mcfg = MLLMConfig(gene_input="tokens", gene_snps=gene_snps) if genome == "tokens" else MLLMConfig()
        res = finetune(base, train, None, mcfg, FinetuneConfig(lr=lr, epochs=10**6, batch_size_per_gpu=batch_size,
                                                               max_steps=steps, bf16=False, seed=seed, log_every=50))
    model = res.module
    table = predict(model, test, batch_size=32, generate=False)
    score = gradient_x_input(model, test, test_spans, genes)
    rank = {g: int(r) + 1 for r, g in enumerate(np.array(genes)[np.argsort(-score, kind="stable")])}
    prompt_tokens = len(model.tokenizer(test[0].genome_text, add_special_tokens=False)["input_ids"])
    return {"task": task, "genome": genome, "arch": arch, "hidden_size": hidden_size, "n_layers": n_layers,
            "lr": lr, "steps": steps, "batch_size": batch_size, "n_train": n_train, "n_test": n_test,
            "n_genes": len(genes), "n_snps": int(cohort.dosage.shape[1]), "genome_tokens": prompt_tokens,
            "majority_share": float(pd.Series(cohort.stages[n_train:]).value_counts(normalize=True).iloc[0]),
            "balanced_accuracy": balanced_accuracy(table["stage"], table["predicted"]),
            "predicted_classes": int(table["predicted"].nunique()),
            "final_loss": float(np.mean([h["loss"] for h in res.history[-10:]])),
            "causal_ranks": [rank[g] for g in cohort.causal], "cpu_s": round(time.process_time() - cpu0, 1)}


DEFAULT_GRID = [dict(task="apoe", genome="text", steps=150), dict(task="apoe", genome="tokens", steps=150)]
FULL_GRID = ([dict(task="apoe", genome=g, steps=300, **size) for g in GENOMES
              for size in ({"n_genes": 5, "n_variants": 25}, {})]
             + [dict(task="liability", genome="tokens", steps=400, arch=a) for a in ("qwen2", "llama")]
             + [dict(task="liability", genome="tokens", steps=800),
                dict(task="liability", genome="tokens", steps=400, lr=3e-3)])
"""The runs of docs/models.md ("Can the LLM read the genes?")."""


def run(out_dir, full: bool = False) -> dict:
    """The grid (``DEFAULT_GRID`` in ~2 CPU-minutes, ``FULL_GRID`` in ~10); one record per run."""
    return {"runs": [run_one(**cfg) for cfg in (FULL_GRID if full else DEFAULT_GRID)]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rgenima_lib.bench.bench_gene_learning", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=TASKS, default="liability")
    parser.add_argument("--genome", choices=GENOMES, default="tokens")
    parser.add_argument("--arch", choices=["qwen2", "llama"], default="qwen2")
    for name, kind, default in (("hidden-size", int, 128), ("layers", int, 2), ("lr", float, 1e-3),
                                ("steps", int, 200), ("batch-size", int, 8), ("n-train", int, 400),
                                ("n-test", int, 200), ("n-genes", int, 20), ("n-variants", int, 250),
                                ("noise-sd", float, 0.3), ("seed", int, 0)):
        parser.add_argument(f"--{name}", type=kind, default=default)
    args = parser.parse_args(argv)
    result = run_one(args.task, args.genome, arch=args.arch, hidden_size=args.hidden_size, n_layers=args.layers,
                     lr=args.lr, steps=args.steps, batch_size=args.batch_size, n_train=args.n_train,
                     n_test=args.n_test, n_genes=args.n_genes, n_variants=args.n_variants, noise_sd=args.noise_sd,
                     seed=args.seed)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
