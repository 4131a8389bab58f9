"""Behaviour of the network itself: sizes, gradients, determinism, precision, configs."""

import pytest
import torch

import sfhformer
from sfhformer import SFHformerConfig, create_model
from sfhformer.models.blocks import FourierUnit, drop_non_hermitian_, from_frequency, to_frequency

from conftest import SMALL


def small(name: str) -> sfhformer.SFHformer:
    return sfhformer.SFHformer(SFHformerConfig(**SMALL[name]))


@pytest.mark.parametrize("name", list(SMALL))
@pytest.mark.parametrize("size", [(37, 53), (5, 7), (64, 48), (1, 1)])
def test_any_size_comes_back_the_same_size(name, size):
    model = small(name).eval()
    x = torch.rand(1, 3, *size)
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()


def test_odd_size_batch_matches_single_images():
    model = small("paper_k4").eval()
    with torch.no_grad():
        for blk in model.modules():  # make the blocks do something
            if isinstance(blk, sfhformer.models.blocks.Block):
                blk.beta.normal_(), blk.gamma.normal_()
        x = torch.rand(3, 3, 37, 53)
        batched = model(x)
        single = torch.cat([model(x[i:i + 1]) for i in range(3)])
    assert torch.allclose(batched, single, atol=1e-5)


def _activate_layer_scale(model):
    for name, p in model.named_parameters():
        if name.endswith(("beta", "gamma")):
            torch.nn.init.normal_(p, std=0.5)


@pytest.mark.parametrize("name", list(SMALL))
def test_gradients_reach_every_parameter(name):
    torch.manual_seed(0)
    model = small(name).train()
    _activate_layer_scale(model)  # zero-initialised beta/gamma would block the branches' gradients
    x = torch.rand(2, 3, 32, 40)
    (model(x) - x).square().mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        if pname.endswith("mix_logits.weight") or pname.endswith("mix_logits.bias"):
            if model.config.num_kernels == 1:
                # softmax over a single kernel is constant: the authors' K=1 weights get zero gradient
                assert p.grad.abs().max() == 0, pname
                continue
        assert p.grad.abs().max() > 0, pname


def test_new_blocks_are_the_identity():
    """beta and gamma start at zero, so a new paper/haze model is x + head(features)."""
    model = create_model("sfhformer_t")
    assert all(p.abs().max() == 0 for n, p in model.named_parameters() if n.endswith(("beta", "gamma")))


@pytest.mark.parametrize("name", ["paper_k4", "lol"])
def test_same_seed_same_model_and_output(name):
    outs = []
    for _ in range(2):
        torch.manual_seed(123)
        model = small(name).eval()
        _activate_layer_scale(model)
        torch.manual_seed(7)
        x = torch.rand(2, 3, 24, 36)
        with torch.no_grad():
            outs.append((model.state_dict(), model(x)))
    (sd1, y1), (sd2, y2) = outs
    assert all(torch.equal(sd1[k], sd2[k]) for k in sd1)
    assert torch.equal(y1, y2)
    torch.manual_seed(124)
    assert not torch.equal(small(name).state_dict()["embed.weight"], sd1["embed.weight"])


@pytest.mark.parametrize("name", list(SMALL))
def test_save_load_round_trip_is_bit_identical(name, tmp_path):
    torch.manual_seed(0)
    model = small(name).eval()
    _activate_layer_scale(model)
    path = sfhformer.save(model, tmp_path / "w.safetensors")
    loaded = sfhformer.load(path)
    assert loaded.config == model.config
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    x = torch.rand(1, 3, 33, 41)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir()), "temporary file left behind"


def test_frequency_layout_is_interleaved_and_invertible():
    x = torch.randn(2, 3, 10, 13)
    f = to_frequency(x)
    ref = torch.fft.rfft2(x, norm="ortho")
    assert f.shape == (2, 6, 10, 7)
    assert torch.allclose(f[:, 0::2], ref.real) and torch.allclose(f[:, 1::2], ref.imag)
    assert torch.allclose(from_frequency(f, (10, 13)), x, atol=1e-5)


@pytest.mark.parametrize("size", [(10, 16), (9, 13)])
def test_inverse_fft_gets_a_spectrum_with_a_real_inverse(monkeypatch, size):
    """The network's spectrum is not Hermitian in its first (and, for even W, last) column;
    cuFFT's c2r leaves that part undefined, pocketfft drops it. The Fourier unit must drop it
    before irfft2, so that every backend computes the same image."""
    seen = []
    irfft2 = torch.fft.irfft2

    def spy(z, s=None, **kwargs):
        seen.append((z.clone(), s[-1]))
        return irfft2(z, s=s, **kwargs)
    monkeypatch.setattr(torch.fft, "irfft2", spy)
    torch.manual_seed(0)
    model = small("paper_k4").eval()
    _activate_layer_scale(model)
    with torch.no_grad():
        model(torch.rand(1, 3, *size))
    assert len(seen) == sum(1 for m in model.modules() if isinstance(m, FourierUnit))
    for z, width in seen:
        for k in (0, z.shape[-1] - 1) if width % 2 == 0 else (0,):
            col = z[..., k]
            # Hermitian along H, so that its inverse along H is real, as any c2r needs
            assert torch.fft.ifft(col, dim=-1).imag.abs().max() < 1e-5 * (1 + col.abs().max()), (width, k)


def test_dropping_the_non_hermitian_part_leaves_the_cpu_result_unchanged():
    torch.manual_seed(0)
    for h, w in ((10, 16), (9, 13), (1, 8)):
        f = torch.randn(2, 6, h, w // 2 + 1) * 50
        before = from_frequency(f, (h, w))
        after = from_frequency(drop_non_hermitian_(f.clone(), w), (h, w))
        assert torch.allclose(before, after, atol=1e-3)
        assert not torch.equal(f, drop_non_hermitian_(f.clone(), w))  # it did change the spectrum


def test_bfloat16_autocast_runs_close_to_float32():
    torch.manual_seed(0)
    model = small("paper_k4").eval()
    _activate_layer_scale(model)
    x = torch.rand(1, 3, 36, 44)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x)
    assert torch.isfinite(low).all()
    assert (low.float() - ref).abs().mean() < 0.05


def test_float64_model_runs():
    model = small("haze").double().eval()
    with torch.no_grad():
        y = model(torch.rand(1, 3, 20, 20, dtype=torch.float64))
    assert y.dtype == torch.float64


@pytest.mark.parametrize("changes, message", [
    (dict(family="nope"), "family"),
    (dict(widths=(8, 16)), "widths"),
    (dict(depths=(1, 1, 1)), "depths"),
    (dict(num_kernels=3), "num_kernels=3 must divide"),
    (dict(family="haze", num_kernels=4), "paper family only"),
    (dict(family="lol", widths=(8, 24, 32), up_widths=(16, 8)), "widths must double"),
    (dict(widths=(7, 16, 32)), "multiple of 2"),
])
def test_invalid_configs_are_refused_with_a_reason(changes, message):
    with pytest.raises(ValueError, match=message):
        SFHformerConfig(**{**SMALL["paper_k1"], **changes})


def test_unknown_preset_and_field():
    with pytest.raises(ValueError, match="known presets"):
        create_model("sfhformer_xl")
    with pytest.raises(ValueError, match="unknown SFHformerConfig field"):
        create_model("sfhformer_t", kernels=4)


def test_wrong_input_shape_is_explained():
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        small("haze")(torch.rand(1, 1, 16, 16))


@pytest.mark.parametrize("preset, params", [("sfhformer_t", 1_527_369), ("sfhformer_s", 2_960_527),
                                            ("sfhformer_m", 5_826_843), ("sfhformer_l", 7_612_069)])
def test_paper_parameter_counts(preset, params):
    assert sum(p.numel() for p in create_model(preset).parameters()) == params


def _randomized(name, seed=0):
    """A small model with non-trivial weights and BatchNorm statistics, in eval mode."""
    torch.manual_seed(seed)
    model = small(name)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
        for n, b in model.named_buffers():
            if n.endswith("running_mean"):
                b.normal_(0, 0.5)
            elif n.endswith("running_var"):
                b.uniform_(0.5, 2.0)
    return model.eval()


@pytest.mark.parametrize("name", list(SMALL))
def test_fuse_keeps_outputs_and_removes_batchnorms(name, tmp_path):
    import copy
    model = _randomized(name)
    x = torch.rand(2, 3, 37, 45)
    with torch.no_grad():
        plain = model(x)
        fused = copy.deepcopy(model).fuse()
        out = fused(x)
    assert (out - plain).abs().max() < 1e-4
    blocks_bn = [m for n, m in fused.named_modules() if isinstance(m, torch.nn.BatchNorm2d) and ".norm" in n
                 and "fourier" not in n]
    assert not blocks_bn
    # the layer scales now live in the mixers' and FFNs' last 1x1 convolutions
    assert all(b.beta is None and b.gamma is None for b in fused.modules()
               if isinstance(b, sfhformer.models.blocks.Block))
    assert fused.fuse() is fused
    if name == "paper_k1":
        assert all(m.mix_logits is None for m in fused.modules() if isinstance(m, sfhformer.models.blocks.FourierUnit))
    with pytest.raises(RuntimeError, match="inference only"):
        fused.train()
    with pytest.raises(ValueError, match="fused model cannot be saved"):
        sfhformer.save(fused, tmp_path / "f.safetensors")


@pytest.mark.parametrize("name", list(SMALL))
def test_fuse_keeps_batchnorm_eps_for_a_channel_with_zero_variance(name):
    """A channel that never varied in training has running_var 0: BatchNorm divides by
    sqrt(eps), and so must the fold (without eps it divides by zero)."""
    import copy
    model = _randomized(name)
    with torch.no_grad():
        for n, b in model.named_buffers():
            if n.endswith("running_var"):
                b[0] = 0.0
    x = torch.rand(1, 3, 33, 40)
    with torch.no_grad():
        plain = model(x)
        fused = copy.deepcopy(model).fuse()(x)
    assert torch.isfinite(plain).all() and torch.isfinite(fused).all()
    assert (fused - plain).abs().max() <= 1e-4 * max(1.0, float(plain.abs().max()))


def test_fuse_matches_the_golden_outputs():
    from conftest import GOLDEN
    for case, kw in [("paper_t_g1", {}), ("lol_s", {}), ("haze_small_nobn", {"fourier_bn": False})]:
        io = torch.load(GOLDEN / f"{case}.io.pt", weights_only=True)
        with torch.no_grad():
            out = sfhformer.load(GOLDEN / f"{case}.pth", **kw).fuse()(io["input"])
        assert (out - io["output"]).abs().max() <= 1e-4, case


@pytest.mark.parametrize("name", ["paper_k4", "lol"])
def test_grad_checkpointing_gives_the_same_gradients_and_statistics(name):
    import copy
    base = _randomized(name).train()
    _activate_layer_scale(base)
    ckpt = copy.deepcopy(base).set_grad_checkpointing(True)
    x = torch.rand(2, 3, 32, 40)
    for m in (base, ckpt):
        (m(x) - x).abs().mean().backward()
    for (n, p), (_, q) in zip(base.named_parameters(), ckpt.named_parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-6, rtol=1e-5), n
    for (n, b), (_, c) in zip(base.named_buffers(), ckpt.named_buffers()):
        assert torch.equal(b, c), n  # running stats updated once, not twice


def test_torch_compile_runs_and_matches():
    """torch.compile (inductor; a C compiler on the CPU) of the fused model gives the same output."""
    model = _randomized("paper_k4").fuse()
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        ref = model(x)
        out = torch.compile(model)(x)
    assert (out - ref).abs().max() < 1e-4
