"""Two real DeepSpeed ZeRO-3 steps on the demo LLM, on CPU with gloo, through torchrun (paper 4.5.2).

The test launches this same file under ``torchrun --nproc_per_node 2``; each rank
runs :func:`worker`. Rank 0 then compares the written checkpoint with the
weights gathered from the ZeRO-3 partitions (equal) and with the initial
weights (changed), and writes the verdict as JSON for the test to check.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rgenima_lib.vocabulary import STAGES

REPO = Path(__file__).resolve().parents[2]  # also run as a script by torchrun, without conftest
BIN = Path(sys.executable).parent
N_VISUAL, D_VIS = 3, 16


def _samples():
    from rgenima_lib.models.prompting import PromptSample

    rng = np.random.default_rng(0)
    return [PromptSample(f"s{i}", f"APOE: {i % 3} 1 0\nBIN1: 2 {i % 2}", STAGES[i % 4],
                         rng.normal(size=(N_VISUAL, D_VIS)).astype(np.float32),
                         np.array([1, i % 2, 1], np.uint8)) for i in range(8)]


def worker(base: str, out: str, result: str) -> None:
    import deepspeed
    import torch

    from rgenima_lib.models.mllm import MLLMConfig, RGenIMA
    from rgenima_lib.train.finetune import FinetuneConfig, finetune

    mcfg = MLLMConfig(visual_dim=D_VIS, connector="mlp")
    # lr far above the paper's 2e-6 so that two steps move every weight visibly in fp32.
    # Gradient checkpointing (the default for real backbones) runs under ZeRO-3 too.
    cfg = FinetuneConfig(lr=1e-3, epochs=1, batch_size_per_gpu=2, grad_accum=1, max_steps=2, seed=3, bf16=True,
                         gradient_checkpointing=True)
    t0 = time.perf_counter()
    res = finetune(base, _samples(), out, mcfg, cfg, deepspeed_config=REPO / "config/deepspeed/zero3.json")
    params = list(res.module.named_parameters())
    partitioned = all(hasattr(p, "ds_id") for _, p in params)
    with deepspeed.zero.GatheredParameters([p for _, p in params]):
        gathered = {n: p.detach().clone() for n, p in params}
    if torch.distributed.get_rank() == 0:
        loaded = RGenIMA.from_checkpoint(out)
        initial = RGenIMA.from_base(base, mcfg, seed=cfg.seed)
        lsd, isd = dict(loaded.named_parameters()), dict(initial.named_parameters())
        mism = [n for n, t in gathered.items() if not torch.equal(lsd[n], t)]
        changed = [n for n, t in gathered.items() if not torch.equal(isd[n], t)]
        Path(result).write_text(json.dumps({
            "steps": res.summary["steps"], "stage": res.summary["deepspeed_zero_stage"],
            "world": res.summary["world_size"], "precision": res.summary["precision"],
            "partitioned": partitioned, "n_params": len(gathered), "mismatched": mism, "changed": changed,
            "unchanged": [n for n in gathered if n not in changed], "losses": [h["loss"] for h in res.history],
            "seconds": time.perf_counter() - t0}))
    torch.distributed.barrier()
    # Without an orderly shutdown gloo's threads can abort a rank at interpreter exit.
    torch.distributed.destroy_process_group()


def test_zero3_json_gathers_16bit_weights_and_auto_values_are_filled():
    from rgenima_lib.train.finetune import FinetuneConfig, fill_deepspeed_auto, load_deepspeed_config

    ds = load_deepspeed_config(REPO / "config/deepspeed/zero3.json")
    assert ds["zero_optimization"]["stage"] == 3
    assert ds["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
    cfg = FinetuneConfig()  # the paper's settings, as they fit its GPUs
    filled = fill_deepspeed_auto(ds, cfg, world_size=8, hidden_size=3584, bf16=True)
    assert "auto" not in json.dumps(filled)
    # The paper's effective batch, 16 x 8 = 128, as 8 per GPU x 2 accumulated (16 per GPU does not fit 80 GB).
    assert filled["train_micro_batch_size_per_gpu"] == 8 and filled["gradient_accumulation_steps"] == 2
    assert filled["train_batch_size"] == 128
    assert filled["optimizer"]["params"]["lr"] == 2e-6 and filled["bf16"]["enabled"] is True
    assert fill_deepspeed_auto(load_deepspeed_config(REPO / "config/deepspeed/zero3.json"), cfg, world_size=1,
                               hidden_size=64, bf16=False)["bf16"]["enabled"] is False


def test_finetune_config_takes_the_schemas_whole_train_section():
    import yaml

    from rgenima_lib.train.finetune import FinetuneConfig

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    # by_data_config is resolved by the workflow (rules/common.smk, train_settings) before the section is passed.
    section = {k: v["default"] for k, v in schema["properties"]["train"]["properties"].items()
               if k != "by_data_config"}
    # The schema's defaults are the paper's settings, the dataclass's own (used by direct construction).
    assert FinetuneConfig.from_dict({**section, "seed": 0}) == FinetuneConfig()
    with pytest.raises(ValueError, match=r"train: missing setting\(s\) log_every"):
        FinetuneConfig.from_dict({k: v for k, v in {**section, "seed": 0}.items() if k != "log_every"})
    with pytest.raises(ValueError, match=r"train: unknown setting\(s\) learning_rate"):
        FinetuneConfig.from_dict({**section, "seed": 0, "learning_rate": 1e-3})


@pytest.mark.parametrize("n,world", [(10, 1), (10, 2), (7, 3), (2, 4)])
def test_shard_order_deals_every_sample_with_equal_steps(n, world):
    from rgenima_lib.train.finetune import shard_order

    shards = [shard_order(n, epoch=1, seed=5, rank=r, world=world) for r in range(world)]
    assert len({len(x) for x in shards}) == 1  # same number of batches on every rank (ZeRO-3 collectives)
    assert set(np.concatenate(shards)) == set(range(n))
    assert np.array_equal(shards[0], shard_order(n, epoch=1, seed=5, rank=0, world=world))
    assert not np.array_equal(shard_order(50, 0, 5, 0, 1), shard_order(50, 1, 5, 0, 1))


def test_torch_extensions_go_to_the_environment_and_a_stale_lock_is_refused(tmp_path, monkeypatch):
    """DeepSpeed's JIT builds never use the home folder's shared cache, and a killed build's lock is named."""
    from rgenima_lib.errors import InputDataError
    from rgenima_lib.train.finetune import STALE_EXTENSION_LOCK_S, prepare_torch_extensions_dir

    monkeypatch.delenv("TORCH_EXTENSIONS_DIR", raising=False)
    assert prepare_torch_extensions_dir() == Path(sys.prefix) / "torch_extensions"
    assert os.environ["TORCH_EXTENSIONS_DIR"] == str(Path(sys.prefix) / "torch_extensions")

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    lock = tmp_path / "py311_cpu" / "deepspeed_shm_comm" / "lock"
    lock.parent.mkdir(parents=True)
    lock.touch()
    assert prepare_torch_extensions_dir() == tmp_path  # a build under way: its lock is fresh
    old = time.time() - STALE_EXTENSION_LOCK_S - 60
    os.utime(lock, (old, old))
    with pytest.raises(InputDataError) as err:
        prepare_torch_extensions_dir()
    assert str(lock) in str(err.value) and "delete" in str(err.value)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:  # several test runs may share the machine: never a fixed port
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("world", [
    1,
    # Two ranks partition every tensor for real, but under a loaded 2-core machine one gloo rank
    # sometimes aborts at exit ("terminate called without an active exception"), after its work is
    # done: kept for `make e2e`, out of `make test` so CI stays deterministic.
    pytest.param(2, marks=pytest.mark.slow),
])
def test_zero3_two_steps_save_reload(tmp_path, world, demo_llm):
    """~15 s on 2 cores; the very first run on a machine adds ~45 s for DeepSpeed's one-off CPU comm-op build."""
    from rgenima_lib.models.demo_llm import is_demo_model

    base = demo_llm(n_heads=4, n_kv_heads=2)
    out, result = tmp_path / "ckpt", tmp_path / "result.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    proc = subprocess.run([str(BIN / "torchrun"), "--nproc_per_node", str(world), "--master_port", str(_free_port()),
                           __file__, str(base), str(out), str(result)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, timeout=600)
    wall = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stdout[-6000:]
    r = json.loads(result.read_text())
    print(f"ZeRO-3 world {world} on CPU (gloo): 2 steps + save + reload in {wall:.1f} s wall; losses {r['losses']}")
    assert (r["steps"], r["stage"], r["world"], r["precision"]) == (2, 3, world, "fp32")
    assert r["partitioned"], "parameters were not ZeRO-3 partitioned"
    assert r["mismatched"] == [], f"checkpoint differs from the gathered weights: {r['mismatched']}"
    # Every trainable tensor moves under AdamW (the anchor row is overwritten but the tied LM head uses it).
    assert r["unchanged"] == [], f"weights that did not change: {r['unchanged']}"
    assert is_demo_model(out)
    assert (out / "connector.safetensors").is_file() and (out / "llm" / "config.json").is_file()


if __name__ == "__main__":
    worker(*sys.argv[1:4])
