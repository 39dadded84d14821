"""tools/ship_checkpoint.py: the card's recipe names the departures from the paper and every lr cool-down the run went
through, read from its log, including those an earlier --lr-decay-from set before a warm restart changed it."""
import sys
from pathlib import Path

from tests.conftest import make_tiny_cfg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from ship_checkpoint import cool_downs, recipe  # noqa: E402


def _log(lrs: dict[int, float]) -> list[dict]:
    return [{"step": step, "lr": lr} for step, lr in sorted(lrs.items())]


def test_cool_downs_are_the_stretches_below_the_base_lr_up_to_the_shipped_step():
    # constant to 1,000, cooled to 3,000, warm restart to 4,000, cooled to 6,000, restarted again (not shipped)
    lrs = {s: 1e-4 for s in range(50, 1001, 50)}
    lrs |= {s: 1e-4 * (3000 - s) / 2000 for s in range(1050, 3001, 50)}
    lrs |= {s: 1e-4 for s in range(3050, 4001, 50)}
    lrs |= {s: 1e-4 * (6000 - s) / 2000 for s in range(4050, 6001, 50)}
    lrs |= {s: 1e-4 for s in range(6050, 7001, 50)}
    log = _log(lrs)
    assert cool_downs(log, 1e-4, 6000) == [(1050, 3000), (4050, 6000)]
    assert cool_downs(log, 1e-4, 2000) == [(1050, 2000)]
    assert cool_downs(log, 1e-4, 1000) == []
    assert cool_downs(log + [{"step": 7050, "img_per_s": 1.0}], 1e-4, 9000) == [(1050, 3000), (4050, 6000)]

    cfg = make_tiny_cfg(lr=1e-4, lr_decay_from=7000, max_steps=9000)  # the config of the last resume
    words = recipe(cfg, 6000, log)
    assert "over steps 1,050-3,000 and 4,050-6,000 (as logged), back at the full lr between them (warm restarts)" in words
    assert "warm restart" not in recipe(cfg, 2000, log) and "over steps 1,050-2,000" in recipe(cfg, 2000, log)
    assert "cooling" not in recipe(cfg, 1000, log)


def test_the_recipe_names_the_departures_from_the_paper():
    plain = recipe(make_tiny_cfg(), 4, [])
    assert "R1" not in plain and "DiffAugment" not in plain
    words = recipe(make_tiny_cfg(r1_gamma=1e-4, augment="translation,cutout"), 4, [])
    assert "R1 penalty gamma 0.0001 on the real images (every 16 steps)" in words
    assert "DiffAugment translation,cutout on real and fake images" in words
