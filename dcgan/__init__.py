"""dcgan-explorer: paper-faithful DCGANs, a fast trainer, latent math and offline metrics."""
from .checkpoints import GeneratorInfo, load_discriminator, load_generator, save_discriminator, save_generator
from .config import DataConfig, ModelConfig, RunConfig, TrainConfig
from .errors import CheckpointError, ConfigError, DatasetError, DCGANError, LatentError
from .latent import arithmetic, interpolate_path, latent_from_seed, latents_from_seeds, parse_seeds, slerp
from .models import build_discriminator, build_generator, recalibrate_batchnorm
from .version import __version__

__all__ = [
    "__version__", "GeneratorInfo", "load_generator", "save_generator", "DataConfig", "ModelConfig", "RunConfig",
    "TrainConfig", "CheckpointError", "ConfigError", "DatasetError", "DCGANError", "LatentError", "arithmetic",
    "interpolate_path", "latent_from_seed", "latents_from_seeds", "parse_seeds", "slerp", "build_discriminator",
    "build_generator", "recalibrate_batchnorm", "load_discriminator", "save_discriminator",
]
