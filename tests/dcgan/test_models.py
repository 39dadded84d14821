import pytest
import torch

from dcgan.config import ModelConfig
from dcgan.errors import ConfigError
from dcgan.models import build_discriminator, build_generator, num_params, recalibrate_batchnorm


@pytest.mark.parametrize("image_size", [16, 32, 64, 128, 256])
@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_shapes_any_power_of_two(image_size, channels):
    cfg = ModelConfig(image_size=image_size, channels=channels, z_dim=10, ngf=4, ndf=4)
    G, D = build_generator(cfg), build_discriminator(cfg)
    x = G(torch.randn(3, 10))
    assert x.shape == (3, channels, image_size, image_size)
    assert x.min() >= -1 and x.max() <= 1
    assert D(x).shape == (3,)


def test_keras_seed_architecture_shapes_and_batchnorm_momentum():
    cfg = ModelConfig(arch="keras", image_size=28, channels=1, z_dim=100)
    G, D = build_generator(cfg), build_discriminator(cfg)
    x = G(torch.randn(2, 100))
    assert x.shape == (2, 1, 28, 28)
    assert D(x).shape == (2,)
    norms = [m for m in list(G.modules()) + list(D.modules()) if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(m.momentum == pytest.approx(0.2) and m.eps == pytest.approx(1e-3) for m in norms)


def test_paper_guidelines_hold():
    G, D = build_generator(ModelConfig()), build_discriminator(ModelConfig())
    g_layers, d_layers = list(G.main), list(D.main)
    assert isinstance(g_layers[-1], torch.nn.Tanh) and isinstance(g_layers[-2], torch.nn.ConvTranspose2d)  # no BN on G's output
    assert isinstance(d_layers[0], torch.nn.Conv2d) and isinstance(d_layers[1], torch.nn.LeakyReLU)  # no BN on D's input
    assert d_layers[1].negative_slope == 0.2
    assert not any(isinstance(m, torch.nn.Linear) for m in G.modules())
    conv = g_layers[0].weight
    assert abs(conv.std().item() - 0.02) < 0.002
    bn = [m for m in G.modules() if isinstance(m, torch.nn.BatchNorm2d)][0]
    assert abs(bn.weight.mean().item() - 1.0) < 0.01


def test_paper_64px_generator_matches_pytorch_examples_layout():
    """pytorch/examples' netG state dicts load into ours as they are (same keys and shapes, ~3.58M params)."""
    G = build_generator(ModelConfig(image_size=64, channels=3, z_dim=100, ngf=64))
    keys = list(G.state_dict())
    assert keys[0] == "main.0.weight" and G.state_dict()["main.0.weight"].shape == (100, 512, 4, 4)
    assert G.state_dict()["main.12.weight"].shape == (64, 3, 4, 4)
    assert num_params(G) == 3_576_704


@pytest.mark.parametrize("arch,image_size", [("dcgan", 32), ("keras", 28)])
def test_spectral_norm_discriminator_is_one_lipschitz_per_layer_and_leaves_g_alone(arch, image_size):
    cfg = ModelConfig(arch=arch, image_size=image_size, channels=1, z_dim=10, ngf=8, ndf=8, d_norm="spectral")
    D = build_discriminator(cfg)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules())
    layers = [m for m in D.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert layers and all(torch.nn.utils.parametrize.is_parametrized(m, "weight") for m in layers)
    x = torch.randn(4, 1, image_size, image_size)
    for _ in range(30):  # each training-mode forward runs one power iteration
        assert D(x).shape == (4,)
    for layer in layers:
        assert torch.linalg.matrix_norm(layer.weight.detach().flatten(1), ord=2) == pytest.approx(1.0, abs=0.02)
    torch.manual_seed(0)
    G_spectral = build_generator(cfg)
    torch.manual_seed(0)
    G_paper = build_generator(ModelConfig(arch=arch, image_size=image_size, channels=1, z_dim=10, ngf=8, ndf=8))
    for (name, a), b in zip(G_spectral.state_dict().items(), G_paper.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)


@pytest.mark.parametrize("bad", [dict(d_norm="layer"), dict(image_size=48), dict(image_size=512),
                                 dict(arch="keras", image_size=64), dict(channels=2), dict(z_dim=0), dict(arch="vae")])
def test_invalid_model_config_is_refused(bad):
    with pytest.raises(ConfigError):
        ModelConfig(**bad).validate()


def test_eval_output_is_batch_independent():
    cfg = ModelConfig(image_size=32, channels=3, z_dim=16, ngf=8)
    G = build_generator(cfg)
    recalibrate_batchnorm(G, cfg.z_dim, batches=4, batch_size=64)
    z = torch.randn(1, 16)
    with torch.no_grad():
        alone = G(z)
        in_batch = G(torch.cat([torch.randn(7, 16) * 3, z]))[-1:]
    torch.testing.assert_close(alone, in_batch, atol=1e-5, rtol=0)


def test_recalibration_sets_running_stats_from_generated_batches():
    cfg = ModelConfig(image_size=16, channels=1, z_dim=8, ngf=4)
    G = build_generator(cfg)
    bn = [m for m in G.modules() if isinstance(m, torch.nn.BatchNorm2d)][0]
    bn.running_mean.fill_(123.0)
    recalibrate_batchnorm(G, cfg.z_dim, batches=2, batch_size=32)
    assert not G.training
    assert bn.running_mean.abs().max() < 10
    assert bn.momentum == 0.1  # restored
