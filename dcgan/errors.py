"""Typed errors raised at the library's boundaries (config, data, checkpoints, latents)."""


class DCGANError(Exception):
    """Base class: anything a user can fix by changing their input."""


class ConfigError(DCGANError, ValueError):
    """An option has a wrong name, type or value."""


class DatasetError(DCGANError):
    """A data set is missing, empty or unreadable."""


class CheckpointError(DCGANError):
    """A checkpoint is not a valid dcgan-explorer (or plain DCGAN) safetensors file."""


class LatentError(DCGANError, ValueError):
    """A seed list, latent vector or latent operation is invalid."""
