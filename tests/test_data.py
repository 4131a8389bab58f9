"""Paired layouts, synthetic degradations, identical augmentation of both images."""

import numpy as np
import pytest
import torch

from sfhformer.data import Compose, PairedImageDataset, SyntheticDataset, photographs
from sfhformer.data.datasets import random_crop, random_flip_rotate
from sfhformer.data.degradations import DEGRADATIONS
from sfhformer.errors import ConfigError
from sfhformer.io import write_image

from conftest import photo


def save(path, arr):
    write_image(path, arr)
    return path


@pytest.fixture(scope="module")
def img():
    return photo("coffee")  # 400 x 600


def test_sots_indoor_layout_centre_crops_ground_truth(img, tmp_path):
    (tmp_path / "hazy").mkdir()
    (tmp_path / "gt").mkdir()
    gt = np.pad(img, ((40, 40), (20, 20), (0, 0)), mode="reflect")  # 640 x 480
    save(tmp_path / "gt" / "1400.png", gt)
    for k in (1, 2):
        save(tmp_path / "hazy" / f"1400_{k}.png", gt[10:470, 10:630])  # 620 x 460
    ds = PairedImageDataset(tmp_path, layout="sots_indoor")
    assert len(ds) == 2
    s = ds[0]
    assert s["lq"].shape == s["gt"].shape == (3, 460, 620)
    assert torch.equal(s["lq"], s["gt"])  # the crop is the centre one


def test_rain100_names_in_one_folder(img, tmp_path):
    for i in (1, 2):
        save(tmp_path / f"rain-{i:03d}.png", img[:64, :64])
        save(tmp_path / f"norain-{i:03d}.png", img[:64, :64])
    ds = PairedImageDataset(tmp_path, layout="rain100")
    assert [(a.name, b.name) for a, b in ds.pairs] == [("rain-001.png", "norain-001.png"),
                                                        ("rain-002.png", "norain-002.png")]


def test_lol_v2_real_and_extension_free_matching(img, tmp_path):
    (tmp_path / "Low").mkdir()
    (tmp_path / "Normal").mkdir()
    save(tmp_path / "Low" / "low00001.png", img[:32, :32])
    save(tmp_path / "Normal" / "normal00001.tif", img[:32, :32])
    assert len(PairedImageDataset(tmp_path, layout="lol_v2_real")) == 1


def test_unmatched_files_are_listed(img, tmp_path):
    (tmp_path / "input").mkdir()
    (tmp_path / "target").mkdir()
    for name in ("a", "b", "c"):
        save(tmp_path / "input" / f"{name}.png", img[:16, :16])
    save(tmp_path / "target" / "a.png", img[:16, :16])
    with pytest.raises(ValueError, match=r"2 degraded file\(s\) without a clean partner .*: b\.png, c\.png"):
        PairedImageDataset(tmp_path)


def test_missing_layout_folder_and_unknown_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match="no degraded folder for layout 'gopro'"):
        PairedImageDataset(tmp_path, layout="gopro")
    with pytest.raises(ValueError, match="unknown layout"):
        PairedImageDataset(tmp_path, layout="nope")


def test_size_mismatch_names_both_files(img, tmp_path):
    (tmp_path / "input").mkdir()
    (tmp_path / "target").mkdir()
    save(tmp_path / "input" / "x.png", img[:20, :20])
    save(tmp_path / "target" / "x.png", img[:24, :20])
    with pytest.raises(ValueError, match=r"x\.png: size 20x20 differs from its clean partner .*x\.png \(20x24\)"):
        PairedImageDataset(tmp_path)[0]


def test_crops_and_augmentation_are_identical_for_both(img, tmp_path):
    (tmp_path / "input").mkdir()
    (tmp_path / "target").mkdir()
    save(tmp_path / "input" / "x.png", img)
    save(tmp_path / "target" / "x.png", 255 - img)
    ds = PairedImageDataset(tmp_path, crop=48, augment=True, seed=3)
    seen = set()
    for epoch in range(6):
        s = ds[(0, epoch)]
        assert s["lq"].shape == (3, 48, 48)
        assert torch.allclose(s["lq"], 1 - s["gt"], atol=1e-6)
        seen.add(float(s["lq"].sum()))
        assert torch.equal(ds[(0, epoch)]["lq"], s["lq"])  # reproducible from (seed, epoch, index)
    assert len(seen) > 3


def test_small_images_are_padded_or_refused():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(3, 20, 30)
    (out,) = random_crop([a], 32, g, pad_small=True, name="small.png")
    assert out.shape == (3, 32, 32)
    with pytest.raises(ValueError, match=r"small\.png: image is 30x20, smaller than the 32x32 crop"):
        random_crop([a], 32, g, pad_small=False, name="small.png")


def test_flip_rotate_covers_the_eight_transforms():
    x = torch.arange(16.0).reshape(1, 4, 4)
    outs = {tuple(random_flip_rotate([x], torch.Generator().manual_seed(s))[0].flatten().tolist()) for s in range(200)}
    assert len(outs) == 8


@pytest.mark.parametrize("kind", list(DEGRADATIONS))
def test_each_degradation_is_seeded_and_changes_the_image(kind, img):
    x = torch.from_numpy(img[:96, :128]).permute(2, 0, 1).float() / 255
    deg = Compose.from_config([{"type": kind}])
    a = deg(x, torch.Generator().manual_seed(1))
    b = deg(x, torch.Generator().manual_seed(1))
    c = deg(x, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    assert (a - x).abs().mean() > 0.003


def test_degradation_physics():
    x = torch.full((3, 64, 64), 0.5)
    g = torch.Generator().manual_seed(0)
    noisy = Compose.from_config([{"type": "gaussian_noise", "sigma": [25, 25]}])(x, g)
    assert abs(float((noisy - x).std()) * 255 - 25) < 1.5
    dark = Compose.from_config([{"type": "low_light", "gamma": [2, 2], "scale": [0.5, 0.5], "noise": [0, 0]}])(x, g)
    assert torch.allclose(dark, torch.full_like(x, 0.125))
    hazy = Compose.from_config([{"type": "haze", "airlight": [1, 1]}])(torch.zeros(3, 64, 64), g)
    assert hazy[:, 0].mean() > hazy[:, -1].mean() > 0  # farther (top) is hazier
    sharp = torch.zeros(3, 33, 33)
    sharp[:, 16, 16] = 1
    blurred = Compose.from_config([{"type": "motion_blur", "length": [9, 9]}])(sharp, g)
    assert abs(float(blurred.sum()) - 3) < 1e-4 and (blurred > 0).sum() >= 3 * 5  # mass kept, spread out


def test_compose_config_errors():
    with pytest.raises(ValueError, match="unknown degradation 'fog'"):
        Compose.from_config([{"type": "fog"}])
    with pytest.raises(ValueError, match="has no option"):
        Compose.from_config([{"type": "jpeg", "sigma": 3}])


def test_synthetic_dataset_over_sample_photographs():
    images = photographs("train")
    assert len(images) >= 10
    assert not {p.stem for p in images} & {p.stem for p in photographs("held_out")}
    ds = SyntheticDataset(images, [{"type": "gaussian_noise", "sigma": [15, 50]}], crop=32, length=20, seed=1)
    s = ds[(3, 0)]
    assert s["lq"].shape == s["gt"].shape == (3, 32, 32) and not torch.equal(s["lq"], s["gt"])
    assert torch.equal(ds[(3, 0)]["lq"], s["lq"]) and not torch.equal(ds[(3, 1)]["gt"], s["gt"])
    val = SyntheticDataset(images[:2], [{"type": "gaussian_noise"}], fixed=True, augment=False)
    assert torch.equal(val[(0, 0)]["lq"], val[(0, 5)]["lq"])


def test_photometric_changes_exposure_and_colour_of_the_target(img):
    from sfhformer.data.degradations import Photometric

    x = torch.from_numpy(img).permute(2, 0, 1).float() / 255
    always = Photometric(gamma=(2.5, 2.5), brightness=(1, 1), channel_gains=(1, 1), permute_channels=False, p=1)
    assert torch.allclose(always(x, torch.Generator().manual_seed(0)), x ** 2.5, atol=1e-6)  # darkens
    mixed = Photometric(p=1)
    a, b = (mixed(x, torch.Generator().manual_seed(s)) for s in (1, 1))
    assert torch.equal(a, b) and a.min() >= 0 and a.max() <= 1  # seeded, in range
    means = {tuple(mixed(x, torch.Generator().manual_seed(s)).mean((1, 2)).argsort().tolist()) for s in range(12)}
    assert len(means) > 2  # the channels' order of brightness changes: colour casts of every kind
    assert torch.equal(Photometric(p=0)(x, torch.Generator()), x)
    with pytest.raises(ValueError, match=r"photometric has no option\(s\) \['hue'\]"):
        Photometric.from_config({"hue": 0.1})
    # in a dataset: the target is the changed photograph, the input that degraded
    ds = SyntheticDataset(photographs("train")[:2], [{"type": "gaussian_noise", "sigma": [25, 25]}], crop=64,
                          length=4, augment=False, photometric={"gamma": [3, 3], "p": 1, "permute_channels": False,
                                                                "brightness": [1, 1], "channel_gains": [1, 1]})
    plain = SyntheticDataset(photographs("train")[:2], [{"type": "gaussian_noise", "sigma": [25, 25]}], crop=64,
                             length=4, augment=False)
    assert ds[(0, 0)]["gt"].mean() < plain[(0, 0)]["gt"].mean() * 0.8


def test_photometric_black_and_white_levels_put_a_channel_at_exactly_black_or_white(img):
    from sfhformer.data.degradations import Photometric

    x = torch.from_numpy(img).permute(2, 0, 1).float() / 255
    plain = dict(gamma=(1, 1), brightness=(1, 1), channel_gains=(1, 1), permute_channels=False, p=1)
    y = Photometric(black_levels=(0.3, 0.3), **plain)(x, torch.Generator().manual_seed(0))
    assert torch.allclose(y, ((x - 0.3) / 0.7).clamp(0, 1), atol=1e-6)  # levels: black point 0.3, white kept
    assert torch.equal(y == 0, x <= 0.3) and (y == 0).float().mean() > 0.05
    drawn = Photometric(black_levels=(0.0, 0.3), **plain)(x, torch.Generator().manual_seed(1))
    assert drawn.amin((1, 2)).eq(0).all() and not torch.equal(drawn[0] == 0, drawn[1] == 0)  # one level per channel
    assert torch.equal(Photometric(**plain)(x, torch.Generator()), x)  # off unless asked for
    with pytest.raises(ConfigError, match=r"black_levels must be a range within \[0, 1\), got \[0.5, 1.0\]"):
        Photometric.from_config({"black_levels": [0.5, 1.0]})
    white = Photometric(white_levels=(0.8, 0.8), **plain)(x, torch.Generator().manual_seed(0))
    assert torch.allclose(white, (x / 0.8).clamp(0, 1), atol=1e-6)  # white point 0.8: a channel blown out
    assert torch.equal(white == 1, x >= 0.8) and (white == 1).float().mean() > 0.02
    with pytest.raises(ConfigError, match=r"white_levels must be a range within \(0, 1\], got \[0.0, 0.9\]"):
        Photometric.from_config({"white_levels": [0.0, 0.9]})


def test_photometric_saturation_scales_each_pixels_distance_from_its_grey(img):
    from sfhformer.data.degradations import Photometric

    x = torch.from_numpy(img).permute(2, 0, 1).float() / 255
    plain = dict(gamma=(1, 1), brightness=(1, 1), channel_gains=(1, 1), permute_channels=False, p=1)
    grey = x.mean(0, keepdim=True)
    y = Photometric(saturation=(2, 2), **plain)(x, torch.Generator().manual_seed(0))
    assert torch.allclose(y, (grey + 2 * (x - grey)).clamp(0, 1), atol=1e-6)
    kept = (grey + 2 * (x - grey) - y).abs().amax(0) < 1e-6  # pixels not clipped keep their grey
    assert kept.float().mean() > 0.1 and torch.allclose(y.mean(0)[kept], grey[0][kept], atol=1e-6)
    assert (y - y.mean(0, keepdim=True)).abs().mean() > 1.5 * (x - grey).abs().mean()  # more colour
    assert torch.allclose(Photometric(saturation=(0, 0), **plain)(x, torch.Generator()), grey.expand(3, -1, -1))
    assert torch.equal(Photometric(**plain)(x, torch.Generator()), x)  # off unless asked for
    with pytest.raises(ConfigError, match=r"saturation must be a range of factors >= 0, got \[2.0, 1.0\]"):
        Photometric.from_config({"saturation": [2.0, 1.0]})


def test_downscale_to_shrinks_large_photographs_once(tmp_path, img):
    path = save(tmp_path / "big.png", img)  # 400 x 600
    ds = SyntheticDataset([path], [{"type": "gaussian_noise"}], downscale_to=300, augment=False)
    assert ds[(0, 0)]["gt"].shape == (3, 200, 300)
    small = SyntheticDataset([path], [{"type": "gaussian_noise"}], downscale_to=1000, augment=False)
    assert small[(0, 0)]["gt"].shape == (3, 400, 600)  # never enlarged


def test_downscale_to_a_list_draws_a_scale_per_sample(tmp_path, img):
    path = save(tmp_path / "big.png", img)  # 400 x 600
    ds = SyntheticDataset([path], [{"type": "gaussian_noise"}], downscale_to=[150, 300, 1000], augment=False,
                          length=40)
    shapes = {tuple(ds[(i, 0)]["gt"].shape) for i in range(40)}
    assert shapes == {(3, 100, 150), (3, 200, 300), (3, 400, 600)}
    assert torch.equal(ds[(7, 0)]["gt"], ds[(7, 0)]["gt"]) and torch.equal(ds[(7, 0)]["lq"], ds[(7, 0)]["lq"])
    single = SyntheticDataset([path], [{"type": "gaussian_noise"}], downscale_to=[300], augment=False)
    one = SyntheticDataset([path], [{"type": "gaussian_noise"}], downscale_to=300, augment=False)
    assert torch.equal(single[(0, 0)]["lq"], one[(0, 0)]["lq"])  # a one-side list draws nothing extra
    for bad in ([], [0], [300, "big"], [True]):
        with pytest.raises(ConfigError, match="downscale_to"):
            SyntheticDataset([path], [{"type": "gaussian_noise"}], downscale_to=bad)


def test_debian_photographs_spec(monkeypatch):
    from sfhformer.data import debian
    from sfhformer.data.samples import resolve_image_list
    from sfhformer.errors import ConfigError, NotFoundError

    splits = {split for *_, split in debian.DEBIAN_PHOTOS.values()}
    assert splits == {"train", "val", "held_out"}
    assert {pkg for pkg, *_ in debian.DEBIAN_PHOTOS.values()} <= set(debian.PACKAGES)
    with pytest.raises(ConfigError):
        debian.debian_photographs("test")
    installed = debian.debian_photographs("val")
    if installed:  # this machine has the packages: the spec names them
        assert resolve_image_list("debian:val") == installed
    monkeypatch.setattr(debian, "DEBIAN_PHOTOS", {"x": ("mate-backgrounds", "/nonexistent/x.jpg", "GPL-2+", "val")})
    with pytest.raises(NotFoundError, match="debian:val: none of its photographs is installed; run "
                                            "configs/bundled/install_photos.sh"):
        resolve_image_list("debian:val")


def test_load_debian_photograph_shrinks_to_a_width_and_names_what_is_missing(tmp_path, monkeypatch):
    from PIL import Image

    from sfhformer.data import debian
    from sfhformer.errors import ConfigError, NotFoundError

    path = tmp_path / "wide.png"
    Image.fromarray(np.tile(np.arange(256, dtype=np.uint8)[None, :, None], (400, 5, 3))).save(path)  # 1280x400
    monkeypatch.setattr(debian, "DEBIAN_PHOTOS", {
        "wide": ("mate-backgrounds", str(path), "GPL-2+", "val"),
        "gone": ("lxqt-themes", str(tmp_path / "gone.jpg"), "CC-BY-SA-3.0", "val")})
    small = debian.load_debian_photograph("wide")
    assert small.shape == (200, 640, 3) and small.dtype == np.uint8
    assert debian.load_debian_photograph("wide", width=None).shape == (400, 1280, 3)
    with pytest.raises(ConfigError, match="'nope' is not one of the Debian photographs"):
        debian.load_debian_photograph("nope")
    with pytest.raises(NotFoundError, match=r"gone.jpg: not installed \(lxqt-themes; bash configs/bundled/install_"):
        debian.load_debian_photograph("gone")


def test_dead_leaves_are_seeded_flat_shapes_of_many_colours():
    from sfhformer.data.dead_leaves import DeadLeaves

    leaves = DeadLeaves(supersample=1)
    a, b, c = (leaves(64, torch.Generator().manual_seed(s)) for s in (3, 3, 4))
    assert a.shape == (3, 64, 64) and a.dtype == torch.float32 and 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)
    colours = torch.unique(a.reshape(3, -1).T, dim=0)
    assert len(colours) > 30  # many shapes, each one flat colour (no supersampling: no blended edge)
    assert torch.unique(DeadLeaves()(64, torch.Generator().manual_seed(3)).reshape(3, -1).T, dim=0).shape[0] \
        > len(colours)  # supersampled: the edges blend neighbouring colours, as a lens does


def test_dead_leaves_bars_are_thin_and_disks_round():
    from sfhformer.data.dead_leaves import DeadLeaves

    def shape_area(bars, seed):  # one shape of radius 12 on a background colour
        x = DeadLeaves(radius=(12, 12), bars=bars, aspect=(6, 6), supersample=1, max_shapes=1)(
            64, torch.Generator().manual_seed(seed))
        background = x[:, 0, 0] if (x[:, 0, 0] == x[:, 0, -1]).all() else x[:, -1, -1]
        return int((x != background[:, None, None]).any(0).sum())

    disks, bars = [shape_area(0, s) for s in range(6)], [shape_area(1, s) for s in range(6)]
    assert all(0 < a <= 3.1416 * 12.5 ** 2 for a in disks) and max(disks) > 300
    assert all(0 < a <= 2 * 12.5 * 2 * 2.6 for a in bars)  # 24 px long, 4 px wide at most


def test_dead_leaves_in_a_dataset_replace_a_share_of_the_crops():
    spec = dict(images=photographs("train")[:2], degradations=[{"type": "gaussian_noise", "sigma": [25, 25]}],
                crop=48, length=40)
    mixed = SyntheticDataset(**spec, dead_leaves={"p": 0.5})
    names = [mixed[(i, 0)]["name"] for i in range(40)]
    assert 8 < sum(n.startswith("dead_leaves_") for n in names) < 32
    item = mixed[(names.index(next(n for n in names if n.startswith("dead_leaves_"))), 0)]
    assert item["gt"].shape == item["lq"].shape == (3, 48, 48) and not torch.equal(item["gt"], item["lq"])
    assert all(SyntheticDataset(**spec, dead_leaves={"p": 0})[(i, 0)]["name"] == f"{p.stem}_{i}"
               for i, p in zip(range(2), spec["images"]))
    with pytest.raises(ConfigError, match="dead_leaves needs a crop size"):
        SyntheticDataset(spec["images"], spec["degradations"], dead_leaves={})
    with pytest.raises(ConfigError, match=r"dead_leaves has no option\(s\) \['texture'\]"):
        SyntheticDataset(**spec, dead_leaves={"texture": 1})


def test_full_res_chroma_shrinks_only_chroma_subsampled_jpegs_at_least_twice(tmp_path, monkeypatch):
    """`full_res_chroma`: a JPEG stored with 4:2:0 or 4:2:2 colour is shrunk 2x or more, whatever
    `downscale_to` asks; a 4:4:4 JPEG and a PNG only as `downscale_to` asks; off, nothing changes."""
    from PIL import Image

    from sfhformer.data.datasets import chroma_subsampled

    rgb = Image.fromarray(np.asarray(photo("astronaut"))[:96, :128])
    files = {"420": tmp_path / "a.jpg", "422": tmp_path / "b.jpg", "444": tmp_path / "c.jpg", "png": tmp_path / "d.png"}
    rgb.save(files["420"], quality=95, subsampling=2)
    rgb.save(files["422"], quality=95, subsampling=1)
    rgb.save(files["444"], quality=95, subsampling=0)
    rgb.save(files["png"])
    assert [chroma_subsampled(f) for f in files.values()] == [True, True, False, False]

    def shapes(**options):
        data = SyntheticDataset(list(files.values()), [], augment=False, **options)
        return [tuple(data[i]["gt"].shape[-2:]) for i in range(len(files))]

    assert shapes() == shapes(full_res_chroma=False) == [(96, 128)] * 4
    assert shapes(full_res_chroma=True) == [(48, 64), (48, 64), (96, 128), (96, 128)]
    assert shapes(full_res_chroma=True, downscale_to=100) == [(48, 64), (48, 64), (75, 100), (75, 100)]
    assert shapes(full_res_chroma=True, downscale_to=40) == [(30, 40)] * 4
    # each photograph is decoded once per side asked for, then kept
    import sfhformer.data.datasets as datasets
    loads = []
    monkeypatch.setattr(datasets, "load_rgb", lambda path, _load=datasets.load_rgb: loads.append(path) or _load(path))
    data = SyntheticDataset([files["420"]], [], augment=False, full_res_chroma=True, downscale_to=100)
    assert data[0]["gt"].shape[-2:] == data[1]["gt"].shape[-2:] == (48, 64) and len(loads) == 1
    # a recipe's data section reaches it (the training config's field)
    from sfhformer.training.config import SyntheticData
    from sfhformer.training.loop import make_dataset
    section = SyntheticData(images=[str(files["420"])], degradations=[], full_res_chroma=True)
    assert tuple(make_dataset(section, seed=0, validation=True)[0]["gt"].shape[-2:]) == (48, 64)
