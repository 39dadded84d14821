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


@pytest.mark.parametrize("values,match", [
    ({"max_minutes": float("nan")}, "max_minutes: nan must be a positive number"),
    ({"max_minutes": float("inf")}, "max_minutes"),
    ({"max_minutes": -1.0}, "max_minutes"),
    ({"epochs": 1e308}, "no larger than"),
    ({"max_steps": 2**64}, "no larger than"),
    ({"lr": float("nan")}, "lr: nan must be a positive number"),
    ({"lr_d": float("inf")}, "lr_d"),
    ({"sample_every": 2**40}, "at most"),
    ({"eval_every": -1}, "at least 0"),
])
def test_budgets_and_rates_refuse_non_finite_and_absurd_values(values, match):
    """NaN compares false with everything: a cap written as `value <= 0` would let it through (and never stop)."""
    with pytest.raises(ConfigError, match=match):
        TrainConfig.from_dict(values)
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**values).validate()


def test_error_messages_cut_huge_inputs():
    with pytest.raises(ConfigError) as info:
        ModelConfig.from_dict({"arch": "x" * 1_000_000})
    assert len(str(info.value)) < 300 and "1,000,002 characters" in str(info.value)
