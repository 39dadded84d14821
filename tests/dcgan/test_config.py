import pytest

from dcgan.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from dcgan.errors import ConfigError


def test_round_trip_through_dict():
    cfg = RunConfig(model=ModelConfig(image_size=32, channels=1), train=TrainConfig(max_steps=5, label_smoothing=0.1))
    assert RunConfig.from_dict(cfg.to_dict()) == cfg


def test_missing_keys_take_defaults():
    assert ModelConfig.from_dict({"image_size": 32}).z_dim == 100
    assert RunConfig.from_dict({}) == RunConfig()


@pytest.mark.parametrize("cls,values,match", [
    (ModelConfig, {"imagesize": 32}, "unknown option"),
    (ModelConfig, {"image_size": "64"}, "not of type"),
    (ModelConfig, {"image_size": True}, "not of type"),
    (TrainConfig, {"lr": "fast"}, "not of type"),
    (TrainConfig, {"bf16": "maybe"}, "auto, on or off"),
    (TrainConfig, {"batch_size": 0}, "at least 1"),
    (TrainConfig, {"label_smoothing": 0.7}, "label_smoothing"),
    (DataConfig, {"max_images": 0}, "at least 1"),
])
def test_bad_values_are_refused_by_name(cls, values, match):
    with pytest.raises(ConfigError, match=match):
        cls.from_dict(values)


def test_unknown_section():
    with pytest.raises(ConfigError, match="unknown section"):
        RunConfig.from_dict({"optim": {}})


def test_ints_are_accepted_for_floats():
    assert TrainConfig.from_dict({"lr": 1}).lr == 1.0
