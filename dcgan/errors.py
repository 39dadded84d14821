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


MAX_SHOWN = 60  # characters of a bad input that an error message repeats


def brief(value: object, limit: int = MAX_SHOWN) -> str:
    """A bad input as an error message may show it: its repr, cut to ``limit`` characters, so a 1 MB string or a
    5,000-digit integer (whose repr Python itself refuses) never comes back whole."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"<a {value.bit_length()}-bit integer>"
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"
