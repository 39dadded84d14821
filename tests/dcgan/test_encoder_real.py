"""dcgan.encoder with real images: the photo term runs, and bad inputs are refused."""
import pytest
import torch

from dcgan.checkpoints import load_generator
from dcgan.encoder import EncoderTraining, train_encoder
from dcgan.errors import ConfigError


def test_real_images_are_fitted_and_continuing_keeps_the_start(tiny_ckpt):
    G, info = load_generator(tiny_ckpt)
    real = torch.randint(0, 256, (20, 3, 16, 16), dtype=torch.uint8)
    first, _ = train_encoder(G, z_dim=8, training=EncoderTraining(steps=3, batch=4), width=8)
    before = {k: v.clone() for k, v in first.state_dict().items()}
    E, record = train_encoder(G, z_dim=8, training=EncoderTraining(steps=3, batch=4), real=real, init=first)
    assert record["real_images"] == 20 and record["continued"] and record["real_pixel_mse"] > 0
    assert all(torch.equal(before[k], v) for k, v in first.state_dict().items())  # init is not changed
    assert E.cfg.width == 8
    with pytest.raises(ConfigError, match="do not match"):
        train_encoder(G, z_dim=8, training=EncoderTraining(steps=1, batch=4), real=real[:, :1])
