"""Model: embeddings equal `protoclust extract`, assignments equal `protoclust assign`, arrays
shared with torch, exports loaded by torchvision."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

import protoclust as pc
from conftest import cifar_arrays, read_safetensors, run_cli, tiny_swav


@pytest.fixture(scope="module")
def swav_ck(cifar_256, tmp_path_factory):
    d = tmp_path_factory.mktemp("swav")
    return pc.train(tiny_swav(cifar_256, d / "run"), progress=False).checkpoint


def test_embed_equals_cli_extract(swav_ck, cifar_256, tmp_path):
    out = tmp_path / "feats.safetensors"
    proc = run_cli("extract", str(swav_ck), "--data", f"cifar10:{cifar_256}", "--out", str(out),
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    cli = read_safetensors(out)
    m = pc.Model.load(swav_ck)
    by_spec = m.embed(f"cifar10:{cifar_256}")
    images, labels = cifar_arrays(cifar_256)
    by_array = m.embed(images, batch_size=100)
    assert by_spec.shape == (256, m.feature_dim) and by_spec.dtype == np.float32
    assert np.array_equal(cli["indices"], np.arange(256))
    assert np.array_equal(cli["labels"], labels)
    np.testing.assert_array_equal(by_spec, cli["features"])
    np.testing.assert_allclose(by_array, cli["features"], rtol=1e-5, atol=1e-6)


def test_assign_agrees_with_cli_row_for_row(swav_ck, cifar_256, tmp_path):
    out = tmp_path / "a.csv"
    proc = run_cli("assign", str(swav_ck), "--data", f"cifar10:{cifar_256}", "--out", str(out),
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    a = pc.Model.load(swav_ck).assign(f"cifar10:{cifar_256}")
    assert len(a) == len(rows) == 256
    for i, r in enumerate(rows):
        assert int(r["index"]) == a.index[i]
        assert int(r["cluster"]) == a.cluster[i]
        assert np.float32(r["score"]) == a.score[i]
        assert np.float32(r["confidence"]) == a.confidence[i]
        assert [int(c) for c in r["top5"].split(";")] == a.top5[i].tolist()
        assert int(r["label"]) == a.label[i]
    d = a.to_dict()
    assert list(d) == ["index", "path", "cluster", "score", "probability", "confidence",
                       "top5", "top5_probabilities", "label"]
    assert len(d["cluster"]) == 256


def test_assign_with_kmeans_and_labels_from_an_array(swav_ck, cifar_256):
    images, labels = cifar_arrays(cifar_256)
    a = pc.Model.load(swav_ck).assign(images, k=5, labels=labels)
    assert set(a.cluster.tolist()) <= set(range(5)) and len(set(a.cluster.tolist())) > 1
    assert np.array_equal(a.label, labels)
    assert np.all(a.top5[:, :5] >= 0)


def test_prototypes_and_properties(swav_ck):
    m = pc.Model.load(swav_ck)
    p = m.prototypes
    assert p.shape == (24, 16) and p.dtype == np.float32
    ck = read_safetensors(swav_ck)
    assert np.array_equal(p, ck["model/prototypes.weight"])
    assert m.image_size == 32 and "method = \"swav\"" in m.config_toml
    assert "swav" in repr(m)


def test_torch_shares_the_embedding_memory(swav_ck, cifar_256):
    torch = pytest.importorskip("torch")
    x = pc.Model.load(swav_ck).embed(f"cifar10:{cifar_256}")
    assert x.flags.writeable and x.flags.c_contiguous
    t = torch.from_numpy(x)
    assert t.data_ptr() == x.ctypes.data
    t[0, 0] = 12345.0
    assert x[0, 0] == 12345.0


def test_export_loads_into_torchvision_with_the_same_features(tmp_path):
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    st = pytest.importorskip("safetensors.torch")
    cfg = tiny_swav(None, tmp_path / "r", train={"epochs": 1, "stop_after_iterations": 1})
    cfg["swav"]["backbone"] = {"depth": 18, "width": 64, "small_stem": False}
    cfg["swav"]["fixed_prototypes"] = True
    cfg["loader"]["batch_size"] = 8
    cfg["data"]["len"] = 8
    run = pc.train(cfg, progress=False)
    m = run.model
    path = m.export(tmp_path / "r18.safetensors")
    net = torchvision.models.resnet18()
    r = net.load_state_dict(st.load_file(str(path)), strict=False)
    assert not r.unexpected_keys and set(r.missing_keys) <= {"fc.weight", "fc.bias"}
    net.fc = torch.nn.Identity()
    net.eval()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
    mean = np.array([0.485, 0.456, 0.406], dtype=np.float32)
    std = np.array([0.229, 0.224, 0.225], dtype=np.float32)
    x = ((images.astype(np.float32) / 255.0 - mean) / std).transpose(0, 3, 1, 2)
    with torch.no_grad():
        ref = net(torch.from_numpy(np.ascontiguousarray(x))).numpy()
    np.testing.assert_allclose(m.embed(images), ref, rtol=1e-3, atol=1e-4)
    onnx = m.export(tmp_path / "r18.onnx", format="onnx")
    assert onnx.stat().st_size > 1000
    with pytest.raises(ValueError, match="pdf"):
        m.export(tmp_path / "x", format="pdf")


def test_bad_inputs_raise_clear_errors(swav_ck, tmp_path):
    m = pc.Model.load(swav_ck)
    with pytest.raises(TypeError, match="uint8"):
        m.embed(np.zeros((2, 8, 8, 3), dtype=np.float32))
    with pytest.raises(pc.DataError, match=r"\(N, H, W, 3\)"):
        m.embed(np.zeros((2, 8, 8, 4), dtype=np.uint8))
    with pytest.raises(pc.DataError, match="missing.png"):
        m.embed([tmp_path / "missing.png"])
    with pytest.raises(pc.DataError, match="unknown kind"):
        m.embed("imagenet:/x")
    with pytest.raises(pc.CheckpointError, match="nothing.safetensors"):
        pc.Model.load(tmp_path / "nothing.safetensors")


RELEASES = Path(__file__).resolve().parents[2] / "protoclust" / "tests" / "released"


@pytest.mark.parametrize("name", ["swav_w8.pth.tar", "slotcon_w8.pth", "odc_w8.pth"])
def test_released_checkpoint_embed_equals_cli_extract(name, tmp_path):
    """A released file (written by the authors' code) opens directly, with the same numbers as
    `protoclust extract` on it, bit for bit."""
    src = RELEASES / name
    out = tmp_path / "feats.safetensors"
    proc = run_cli("extract", str(src), "--data", "synthetic:12:40", "--out", str(out),
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    cli = read_safetensors(out)
    m = pc.Model.load(src)
    assert m.method == {"swav_w8.pth.tar": "swav", "slotcon_w8.pth": "slotcon",
                        "odc_w8.pth": "odc"}[name]
    got = m.embed("synthetic:12:40")
    assert got.shape == (12, 256)
    np.testing.assert_array_equal(got, cli["features"])


def test_a_bad_release_is_a_checkpoint_error():
    with pytest.raises(pc.CheckpointError, match="missing tensor `module.layer2.1.bn2.running_var`"):
        pc.Model.load(RELEASES / "bad_missing.pth.tar")


def _cpu_has_bf16():
    try:
        with open("/proc/cpuinfo") as f:
            return " avx512_bf16" in f.read()
    except OSError:
        return False


def test_embed_in_bf16_follows_f32_or_is_refused(swav_ck, cifar_256):
    m = pc.Model.load(swav_ck)
    f32 = m.embed(f"cifar10:{cifar_256}")
    with pytest.raises(pc.ConfigError, match="f16"):
        m.embed(f"cifar10:{cifar_256}", precision="f16")
    with pytest.raises(pc.ConfigError, match="precision"):
        m.embed(f"cifar10:{cifar_256}", precision="fp8")
    if not _cpu_has_bf16():
        with pytest.raises(pc.ConfigError, match="AVX512-BF16"):
            m.embed(f"cifar10:{cifar_256}", precision="bf16")
        return
    bf16 = m.embed(f"cifar10:{cifar_256}", precision="bf16")
    assert bf16.shape == f32.shape and bf16.dtype == np.float32
    err = np.abs(bf16 - f32).max()
    assert 0 < err <= 2e-2 * np.abs(f32).max()
