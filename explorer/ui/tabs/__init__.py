"""One module per explorer tab; each exposes ``<name>_tab(ctx)`` and is listed in ``explorer.ui``."""
