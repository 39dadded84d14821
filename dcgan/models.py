"""The paper's DCGAN generator and discriminator (any power-of-two size) and the 28x28 Keras-GAN seed nets."""
from __future__ import annotations

import math

import torch
from torch import nn

from .config import ModelConfig


def init_weights(module: nn.Module) -> None:
    """The paper's init: conv weights ~ N(0, 0.02); BatchNorm gamma ~ N(1, 0.02), beta = 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def _num_upsamplings(image_size: int) -> int:
    """Stride-2 stages between the 4x4 projection and the output: 64 px -> 4 (4, 8, 16, 32, 64)."""
    return int(math.log2(image_size)) - 2


# ----------------------------------------------------------------------------------------------------------------
# The paper's nets (section 3): fractionally-strided convs, BN everywhere but G's output and D's input, no hidden FC.

class DCGANGenerator(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        n = _num_upsamplings(cfg.image_size)
        width = cfg.ngf * 2 ** (n - 1)
        layers: list[nn.Module] = [
            # z as a 1x1 image projected to 4x4 by a transposed conv (the paper's "project and reshape")
            nn.ConvTranspose2d(cfg.z_dim, width, 4, 1, 0, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(True),
            # state size: (ngf * 2^(n-1)) x 4 x 4
        ]
        for _ in range(n - 1):
            layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width // 2), nn.ReLU(True)]
            width //= 2
            # state size: width x (2x previous side)
        layers += [nn.ConvTranspose2d(width, cfg.channels, 4, 2, 1, bias=False), nn.Tanh()]
        # state size: channels x image_size x image_size, in [-1, 1]
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z [N, z_dim] -> x [N, C, H, W] in [-1, 1]."""
        return self.main(z[:, :, None, None])


class DCGANDiscriminator(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        n = _num_upsamplings(cfg.image_size)
        width = cfg.ndf
        # no BatchNorm on D's input layer (section 3)
        layers: list[nn.Module] = [nn.Conv2d(cfg.channels, width, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        # state size: ndf x (image_size / 2) x (image_size / 2)
        for _ in range(n - 1):
            layers += [nn.Conv2d(width, width * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width * 2), nn.LeakyReLU(0.2, True)]
            width *= 2
            # state size: width x (half the previous side); 4 x 4 after the last one
        layers += [nn.Conv2d(width, 1, 4, 1, 0, bias=False)]
        # state size: 1 x 1 x 1, a logit (BCE-with-logits keeps mixed precision safe)
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, C, H, W] in [-1, 1] -> logits [N]."""
        return self.main(x).flatten()


# ----------------------------------------------------------------------------------------------------------------
# The seed document's Keras-GAN dcgan.py, for 28x28. Keras BatchNormalization(momentum=0.8) keeps 80% of the old
# running average, which is PyTorch momentum=0.2; Keras' default epsilon is 1e-3. The common PyTorch port wrote
# BatchNorm2d(n, 0.8), which silently sets eps=0.8 (the second positional argument), not the momentum.

def _keras_bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.2)


class KerasGenerator(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        width = cfg.ngf * 2  # the seed uses 128 with ngf=64
        self.width = width
        self.project = nn.Sequential(nn.Linear(cfg.z_dim, width * 7 * 7), nn.ReLU(True))
        # state size: width x 7 x 7
        self.main = nn.Sequential(
            nn.Upsample(scale_factor=2),
            nn.Conv2d(width, width, 3, padding=1), _keras_bn(width), nn.ReLU(True),
            # state size: width x 14 x 14
            nn.Upsample(scale_factor=2),
            nn.Conv2d(width, width // 2, 3, padding=1), _keras_bn(width // 2), nn.ReLU(True),
            # state size: (width / 2) x 28 x 28
            nn.Conv2d(width // 2, cfg.channels, 3, padding=1), nn.Tanh(),
            # state size: channels x 28 x 28
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(self.project(z).view(-1, self.width, 7, 7))


class KerasDiscriminator(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        w = cfg.ndf // 2  # the seed uses 32 with ndf=64
        self.main = nn.Sequential(
            nn.Conv2d(cfg.channels, w, 3, 2, 1), nn.LeakyReLU(0.2, True), nn.Dropout(0.25),
            # state size: w x 14 x 14
            nn.Conv2d(w, w * 2, 3, 2, 1), nn.ZeroPad2d((0, 1, 0, 1)), _keras_bn(w * 2), nn.LeakyReLU(0.2, True), nn.Dropout(0.25),
            # state size: 2w x 8 x 8
            nn.Conv2d(w * 2, w * 4, 3, 2, 1), _keras_bn(w * 4), nn.LeakyReLU(0.2, True), nn.Dropout(0.25),
            # state size: 4w x 4 x 4
            nn.Conv2d(w * 4, w * 8, 3, 1, 1), _keras_bn(w * 8), nn.LeakyReLU(0.2, True), nn.Dropout(0.25),
            # state size: 8w x 4 x 4
            nn.Flatten(), nn.Linear(w * 8 * 4 * 4, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).flatten()


GENERATORS = {"dcgan": DCGANGenerator, "keras": KerasGenerator}
DISCRIMINATORS = {"dcgan": DCGANDiscriminator, "keras": KerasDiscriminator}


def build_generator(cfg: ModelConfig) -> nn.Module:
    cfg.validate()
    G = GENERATORS[cfg.arch](cfg)
    G.apply(init_weights)
    return G


def build_discriminator(cfg: ModelConfig) -> nn.Module:
    cfg.validate()
    D = DISCRIMINATORS[cfg.arch](cfg)
    D.apply(init_weights)
    if cfg.d_norm == "spectral":
        _spectral_normalise(D)
    return D


def _spectral_normalise(D: nn.Module) -> None:
    """Swap D's BatchNorm layers for identities and constrain every weight layer's spectral norm to 1 (Miyato et al.
    2018): a 1-Lipschitz D whose gradients stay informative however well it separates real from fake."""
    for name, child in D.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(D, name, nn.Identity())
        elif isinstance(child, (nn.Conv2d, nn.Linear)):
            nn.utils.parametrizations.spectral_norm(child)
        else:
            _spectral_normalise(child)


def num_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@torch.no_grad()
def recalibrate_batchnorm(G: nn.Module, z_dim: int, *, batches: int = 32, batch_size: int = 256, seed: int = 0) -> nn.Module:
    """Re-estimate G's BatchNorm running statistics from fresh latents, then switch to eval().

    An EMA generator's running statistics belong to the raw weights, so eval-mode output from them is off;
    an exact average over many batches makes eval() output both good and batch-independent.
    """
    norms = [m for m in G.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return G.eval()
    momenta = [m.momentum for m in norms]
    device = next(G.parameters()).device
    rng = torch.Generator().manual_seed(seed)
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over all batches
    G.train()
    for _ in range(batches):
        G(torch.randn(batch_size, z_dim, generator=rng).to(device))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    return G.eval()
