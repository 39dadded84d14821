"""The Gradio layer: ``app.build_app`` assembles the page from ``tabs/`` and the public API (``api``), all of them
built on ``context`` (the shared header components, the error guard and the queues). Wiring only: every
computation is a call into ``explorer.service``."""
