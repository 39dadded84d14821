"""dcgan-explorer: paper-faithful DCGANs, a fast trainer, latent math and offline metrics.

The public names load on first use (PEP 562), so `dcgan --help` and `import dcgan.config` do not pay for torch.
"""
from .version import __version__

_EXPORTS = {
    "checkpoints": ("GeneratorInfo", "load_generator", "save_generator"),
    "config": ("DataConfig", "ModelConfig", "RunConfig", "TrainConfig"),
    "errors": ("CheckpointError", "ConfigError", "DatasetError", "DCGANError", "LatentError"),
    "latent": ("arithmetic", "interpolate_path", "latent_from_seed", "latents_from_seeds", "parse_seeds", "slerp"),
    "models": ("build_discriminator", "build_generator", "recalibrate_batchnorm"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = ["__version__", *_MODULE_OF]


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'dcgan' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
