"""Damaged caches and model folders, at the reader: each names the file and the rule that rebuilds it."""

import json

import numpy as np
import pytest

from rgenima_lib.attribution.dump_format import read_dump
from rgenima_lib.errors import InputDataError
from rgenima_lib.imaging.roi_extract import npy_layout, open_roi_patches
from rgenima_lib.models.backbones import backbone_config_error, demo_arch
from rgenima_lib.models.embedding_cache import load_embeddings, save_embeddings, writer_rule
from rgenima_lib.models.mllm import BASE_MODEL_FIX, check_model_folder

from catalog.caches import attention_dump, truncate


def test_npy_layout_reads_header_and_size(tmp_path):
    path = tmp_path / "a.npy"
    np.save(path, np.zeros((3, 5, 7), np.uint8))
    shape, dtype, offset = npy_layout(path, rule="roi_extract")
    assert (shape, dtype, offset + 105) == ((3, 5, 7), np.uint8, path.stat().st_size)
    with open(path, "ab") as fh:  # one byte too many: another array was written over a longer one
        fh.write(b"\0")
    with pytest.raises(InputDataError, match=f"longer than its header says: {offset + 106} bytes"):
        npy_layout(path, rule="roi_extract")


@pytest.mark.parametrize("damage", ["truncated", "garbage", "float"])
def test_open_roi_patches_refuses_damaged_files(tmp_path, damage):
    path = tmp_path / "011_S_0002.npy"
    np.save(path, np.zeros((4, 2, 2, 2), np.float32 if damage == "float" else np.uint8))
    if damage == "truncated":
        truncate(path, keep=0.9)
    elif damage == "garbage":
        path.write_bytes(b"PK\x03\x04" + bytes(200))
    with pytest.raises(InputDataError) as err:
        open_roi_patches(path)
    text = str(err.value)
    assert text.startswith(f"{path}: subject 011_S_0002: ")
    assert f"rm '{path}' '{path.with_suffix('.json')}'" in text and "rule roi_extract rebuilds it" in text
    assert {"truncated": "truncated: ", "garbage": "not a readable .npy file",
            "float": "holds float32[4, 2, 2, 2], not ROI patches"}[damage] in text


def test_embedding_cache_names_its_rule(tmp_path):
    tokens = tmp_path / "results" / "baselines" / "gene_tokens" / "fold1.safetensors"
    save_embeddings(tokens, ["a|0", "b|0"], np.ones((2, 3, 4)), np.ones((2, 3)))
    assert load_embeddings(tokens)[1].shape == (2, 3, 4)
    truncate(tokens, keep=0.95)
    with pytest.raises(InputDataError, match="rule gene_tokens rebuilds it"):
        load_embeddings(tokens)
    assert writer_rule("results/embeddings/med3d/fold0.safetensors") == "embed"


def test_embedding_cache_arrays_must_agree(tmp_path):
    from safetensors.numpy import save_file

    path = tmp_path / "results" / "embeddings" / "rit" / "fold0.safetensors"
    path.parent.mkdir(parents=True)
    # Three subjects listed, two rows stored: rows would be matched to the wrong subjects.
    save_file({"tokens": np.zeros((2, 3, 4), np.float16), "presence": np.ones((2, 3), np.uint8)}, str(path),
              metadata={"format": "rgenima-embeddings/1", "subjects": json.dumps(["a", "b", "c"]), "info": "{}"})
    with pytest.raises(InputDataError, match=r"arrays disagree: 3 subjects, tokens \(2, 3, 4\)"):
        load_embeddings(path)


@pytest.mark.parametrize("damage", ["truncated", "member"])
def test_read_dump_refuses_damaged_dumps(tmp_path, damage):
    path = attention_dump(tmp_path / "dump.npz")
    assert read_dump(path).n_subjects == 6
    data = bytearray(path.read_bytes())
    if damage == "truncated":
        path.write_bytes(bytes(data[: len(data) // 2]))
    else:  # the zip directory is intact, a compressed member is not
        start = data.index(b"roi_gene.npy") + 40
        data[start:start + 64] = bytes(64)
        path.write_bytes(bytes(data))
    with pytest.raises(InputDataError) as err:
        read_dump(path)
    assert str(err.value).startswith(f"{path}: damaged attention dump")
    assert f"rm '{path}'" in str(err.value) and "rule attribute rebuilds it" in str(err.value)


def test_check_model_folder(tmp_path):
    with pytest.raises(InputDataError, match="model folder not found"):
        check_model_folder(tmp_path / "absent", fix=BASE_MODEL_FIX)
    with pytest.raises(InputDataError, match="no config.json"):
        check_model_folder(tmp_path, fix=BASE_MODEL_FIX)
    (tmp_path / "config.json").write_text('{"model_type": "qwen2", ')
    with pytest.raises(InputDataError, match="config.json is not valid JSON"):
        check_model_folder(tmp_path, fix=BASE_MODEL_FIX)
    (tmp_path / "config.json").write_text('{"architectures": ["X"]}')
    with pytest.raises(InputDataError, match="unknown backbone: config.json has model_type None"):
        check_model_folder(tmp_path, fix=BASE_MODEL_FIX)
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    assert check_model_folder(tmp_path, fix=BASE_MODEL_FIX) == {"model_type": "llama"}


def test_backbone_without_demo_arch_is_named():
    llm = {"backbones": {"qwen": {"model_path": None}, "mistral": {"model_path": None}},
           "demo": {"enabled": True, "arch": {"qwen": "qwen2", "llama": "llama"}}}
    message = backbone_config_error(llm)
    assert message.startswith("config: backbone(s) mistral of llm.backbones have no model_path")
    assert "llm.demo.arch.<name>" in message and "qwen2, llama" in message
    assert "llm.demo.arch: {qwen: qwen2, mistral: qwen2}" in message
    with pytest.raises(ValueError, match="backbone\\(s\\) mistral"):
        demo_arch(llm, "mistral")
    assert demo_arch(llm, "qwen") == "qwen2"
    # With weights, or without the demo, the demo architecture is never needed.
    assert backbone_config_error({**llm, "backbones": {"mistral": {"model_path": "/m"}}}) is None
    assert backbone_config_error({**llm, "demo": {"enabled": False, "arch": {}}}) is None
