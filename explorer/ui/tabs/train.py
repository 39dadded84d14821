"""Train tab: start, watch, stop and resume a training run (a `dcgan train` subprocess), or attach to a CLI run.

A gr.Timer polls the run directory every second and sends only what changed; the trainer and the app share files,
never memory. A run that stops or finishes appears in the model picker at once, and a reloaded page lists every run
(and picks the one training now) so a user can go back to it.
"""
from pathlib import Path
from typing import Any, Optional

import gradio as gr
import pandas as pd
from gradio.data_classes import FileData

from dcgan.config import AUGMENTATIONS, D_NORMS, SWITCHES

from ... import service
from ...derived import Catalog
from ...outputs import OutputDir
from ...training import ACTIVE_STATES, MAX_R1_GAMMA, TrainingManager, TrainSettings, optional_number, serve_copy, timelapse_gif
from ..context import TRAINING_QUEUE, Context, guard
from .train_compare import compare_runs

POLL_SECONDS = 1.0
TRAINING_CONCURRENCY = 4  # polls and training calls at once: file reads and process control, each a few ms
# plain words: status lines must read the same where no emoji font is installed
STATES = {"starting": "starting", "running": "running", "stopping": "stopping (saving a checkpoint)", "finished": "finished",
          "stopped": "stopped", "failed": "failed", "dead": "process gone", "unknown": "unknown"}
PLOT_COLUMNS = {"step": "int64", "value": "float64", "series": "string"}  # numbers as numbers: quantitative axes, drawn lines


def _eta(seconds: Optional[float]) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes} min {secs:02d} s"


def status_markdown(status: dict[str, Any]) -> str:
    """The run's state in plain words (what the status panel shows)."""
    lines = [f"**{status['name']}**: {STATES.get(status['state'], status['state'])} · step {status['step']} · "
             f"epoch {status['epoch']:.2f} · {status['img_per_s'] or 0:.0f} img/s · ETA {_eta(status['eta_s'])} · "
             f"{status['images_seen']:,} images seen"]
    lines += [f"> **Warning:** {w}" for w in status["warnings"]]
    if status.get("error"):
        lines.append(f"> **Error:** {status['error']}")
    metrics = status.get("last_metrics")
    if metrics:
        rows = "".join(f"| {k} | {v:.4g} | {metrics.get('floor', {}).get(k, float('nan')):.4g} |\n"
                       for k, v in metrics.get("metrics", {}).items() if isinstance(v, (int, float)))
        lines.append("\n| metric | value | real floor |\n|---|---|---|\n" + rows)
    if status.get("log_tail"):
        lines.append(f"```\n{status['log_tail']}\n```")
    return "\n\n".join(lines)


def loss_frames(status: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Long-format frames for the two plots: losses (lossD, lossG) and D outputs (D(x), D(G(z))). The dtypes are fixed,
    even with no rows yet: gr.LinePlot takes each axis's scale from them, and an object column is drawn as categories."""
    def frame(keys: dict[str, str]) -> pd.DataFrame:
        rows = [{"step": r["step"], "value": r[k], "series": label} for r in status["losses"] for k, label in keys.items() if k in r]
        return pd.DataFrame(rows, columns=list(PLOT_COLUMNS)).astype(PLOT_COLUMNS)
    return frame({"lossD": "loss D", "lossG": "loss G"}), frame({"D_x": "D(x)", "D_G_z": "D(G(z))"})


def session_of(request: gr.Request | None) -> str:
    """The Gradio session (a browser tab, or one gradio_client.Client) making a request: a run's owner."""
    return getattr(request, "session_hash", None) or ""


def grid_copy(out: OutputDir, path: Optional[str], name: str) -> Optional[str]:
    """A preview grid as a file of its own in the output folder, which the web server may serve while the run writes on."""
    return str(serve_copy(path, out.path(f"{name}-grid", ".png"))) if path else None


def _seen(status: dict[str, Any]) -> dict[str, Any]:
    """What one poll showed of a run; the next poll sends only the outputs whose part of this changed."""
    grid = status["latest_grid"]
    try:
        grid_key = f"{grid}@{Path(grid).stat().st_mtime_ns}" if grid else None
    except OSError:
        grid_key = grid
    return {"run": status["name"], "grid": grid_key, "losses": len(status["losses"]), "samples": len(status["samples"]),
            "done": status["state"] not in ACTIVE_STATES}


def time_lapse_position(count: int, index: Any, pick: Optional[int]) -> tuple[Optional[int], Optional[int], bool]:
    """Where a poll puts the time-lapse slider, given ``count`` preview grids, the slider's value as the browser sent
    it and the preview the user picked (None: follow the newest). Returns (the pick still standing, the value to set,
    None to leave it, and whether to put the picked preview back: a poll answered before the pick reached the
    server moved the slider to the newest grid)."""
    pick = pick if pick is not None and pick < count else None
    if pick is None:
        return None, max(0, count - 1), False
    if index is None or int(index) != pick:
        return pick, pick, True
    return pick, None, False


def train_tab(ctx: Context) -> None:
    manager: TrainingManager = ctx.training
    allow_folders = manager.limits.allow_folders
    datasets = manager.available_datasets()
    with gr.Tab("Train", id="train"):
        gr.Markdown("Train a DCGAN here and watch it learn: the fixed-noise grid (seeds 0-63) is redrawn every few steps. "
                    f"Training runs in its own process; this app runs {manager.limits.max_concurrent} at a time, "
                    f"each at most {manager.limits.max_minutes:g} minutes.")
        with gr.Row():
            with gr.Column(scale=1):
                dataset = gr.Dropdown(datasets, value=datasets[0] if datasets else None, label="Data set")
                folder = gr.Textbox(label="Image folder on this machine", visible=False, placeholder="/path/to/images")
                arch = gr.Radio(["dcgan", "keras"], value="dcgan", label="Architecture", info="keras: the 28x28 seed nets")
                image_size = gr.Dropdown([16, 28, 32, 64, 128], value=32, label="Image size", info="dcgan: 16-128; keras: 28",
                                         elem_id="train-size")
                width = gr.Slider(8, 128, 32, step=8, label="Width (ngf = ndf)", elem_id="train-width")
                batch = gr.Slider(8, manager.limits.max_batch_size, 64, step=8, label="Batch size", elem_id="train-batch")
                minutes = gr.Number(5, minimum=0.1, maximum=manager.limits.max_minutes, label="Budget (minutes)", elem_id="train-minutes")
                # a text box: Gradio's number box shows 0 for "no value", and blank is what "optional" should look like
                epochs = gr.Textbox("", label="or epochs (optional)", placeholder="blank: no epoch limit", elem_id="train-epochs")
                sample_every = gr.Number(25, precision=0, minimum=1, label="Preview every N steps", elem_id="train-every")
                with gr.Accordion("Small data sets (off by default)", open=False, elem_id="train-small-data"):
                    augment = gr.CheckboxGroup(list(AUGMENTATIONS), value=[], label="DiffAugment",
                                               info="the same random transforms on every image D sees, real and fake: "
                                                    "keeps D from memorising a few thousand images", elem_id="train-augment")
                    flip = gr.Radio(list(SWITCHES), value="auto", label="Flip real images left-right",
                                    info="auto: on for faces and folders, off for digits and clothes", elem_id="train-flip")
                    d_norm = gr.Radio(list(D_NORMS), value="batch", label="D's normalisation",
                                      info="spectral: the biggest single gain on MNIST and Fashion-MNIST", elem_id="train-d-norm")
                    r1_gamma = gr.Number(0, minimum=0, maximum=MAX_R1_GAMMA, label="R1 penalty (gamma; 0: off)",
                                         info="smooths D around the real images; 1e-4 suits a fine-tuned face D", elem_id="train-r1")
                start = gr.Button("Start", variant="primary", elem_id="train-start")
                gr.Markdown("---")
                run = gr.Dropdown(manager.list_runs(), value=None, label="Run", allow_custom_value=False, elem_id="train-run")
                with gr.Row():
                    stop = gr.Button("Stop (saves a checkpoint)", variant="stop", elem_id="train-stop")
                    resume = gr.Button("Resume")
                with gr.Row(visible=allow_folders):
                    attach_path = gr.Textbox(label="Attach a run directory (read-only)", placeholder="runs/00003-mnist-32", scale=3)
                    attach = gr.Button("Attach", scale=1)
            with gr.Column(scale=2):
                status_md = gr.Markdown("Start a run, or pick one to watch.", elem_id="train-status")
                latest = gr.Image(label="Latest preview grid", format="png", interactive=False, elem_id="train-latest",
                                  elem_classes=["pixelated"])
                with gr.Row():
                    frame = gr.Slider(0, 1, 0, step=1, label="Time-lapse: preview number", scale=3)
                    gif_btn = gr.Button("Time-lapse GIF", scale=1)
                timelapse = gr.Image(label="Preview at that point", format="png", interactive=False, elem_classes=["pixelated"])
                gif_file = gr.File(label="Time-lapse GIF")
                with gr.Row():
                    # no height: with one, Gradio clips the legend naming the series
                    losses = gr.LinePlot(x="step", y="value", color="series", label="Losses", y_title="loss", elem_id="train-losses")
                    d_out = gr.LinePlot(x="step", y="value", color="series", label="D outputs", y_title="D output", y_lim=[0, 1],
                                        elem_id="train-d-outputs")
        compare_runs(manager, TRAINING_CONCURRENCY)  # the curves of up to four runs overlaid
        timer = gr.Timer(POLL_SECONDS, active=False)
        samples = gr.State([])
        seen = gr.State({})
        # the preview the user went back to (None: follow the newest). Kept on the server, so a poll answered before the
        # user's pick reached it, which moves the slider to the newest grid, is undone by the next poll.
        pinned = gr.State(None)

        def start_run(ds, fold, ar, size, w, b, mins, eps, every, policy, flips, norm, gamma, request: gr.Request):
            settings = TrainSettings(dataset=ds, folder=fold or "", arch=ar, image_size=size, width=w, batch_size=b, minutes=mins,
                                     epochs=optional_number("epochs", eps), sample_every=every if every is not None else 25,
                                     augment=",".join(policy or []), flip=flips, d_norm=norm, r1_gamma=gamma or 0.0)
            return started(manager.start(settings, owner=session_of(request)))

        def stop_run(name, request: gr.Request):
            manager.request_stop(name, session_of(request))  # returns at once; the polls show "stopping", then "stopped"

        def resume_run(name, mins, request: gr.Request):
            return started(manager.resume(name, mins, session_of(request)))

        def started(name: str):
            return gr.update(choices=manager.list_runs(), value=name), gr.Timer(active=True)

        def list_runs():
            """Every run, for a page just (re)loaded; the newest run training now is picked, so its watch resumes."""
            training_now = manager.running()
            return gr.update(choices=manager.list_runs(), value=training_now[-1] if training_now else None)

        def poll(name, before, mine, index, pick):
            if not name:
                return [gr.skip()] * (len(poll_outputs) - 1) + [gr.Timer(active=False)]
            status = manager.status(name)
            now = _seen(status)
            fresh = before.get("run") != name
            changed = {key: fresh or before.get(key) != value for key, value in now.items()}
            picker = gr.skip()
            if now["done"] and changed["done"] and status["has_generator"]:
                service.refresh(ctx.catalog)  # the stopped or finished run is explorable right away, in this page's picker too
                picker = gr.update(choices=service.picker_names(ctx.catalog, mine))
            grid = grid_copy(ctx.out, status["latest_grid"], name) if changed["grid"] else gr.skip()
            # no frame before the first loss: the plot fixes its legend (the series) from the first frame it draws
            plots = (loss_frames(status) if status["losses"] else (None, None)) if changed["losses"] else (gr.skip(), gr.skip())
            paths = [p for _, p in status["samples"]]
            pick, value, restore = time_lapse_position(len(paths), index, None if fresh else pick)
            reach = max(1, len(paths) - 1)
            if restore:
                timeline = (paths, gr.update(maximum=reach, value=pick), show_frame(paths, pick, name))
            elif not (changed["samples"] or changed["grid"]):
                timeline = (gr.skip(),) * 3
            elif value is not None:
                timeline = (paths, gr.update(maximum=reach, value=value), grid)
            else:  # the user is looking back through the time-lapse: keep that picture, only let the slider reach further
                timeline = (paths, gr.update(maximum=reach), gr.skip())
            return (status_markdown(status), grid, *plots, *timeline, now, pick, picker, gr.Timer(active=not now["done"]))

        def show_frame(paths, index, name):
            ok = paths and 0 <= int(index) < len(paths)
            return grid_copy(ctx.out, paths[int(index)], name or "run") if ok else None

        def pick_frame(paths, index, name):
            """The picture at the slider, and the pick kept: a look back, or None when the newest grid is picked."""
            at_newest = not paths or int(index) >= len(paths) - 1
            return show_frame(paths, index, name), None if at_newest else int(index)

        def make_gif(name):
            return str(timelapse_gif(manager.run_dir(name), ctx.out.path(f"{name}-timelapse", ".gif")))

        inputs = [dataset, folder, arch, image_size, width, batch, minutes, epochs, sample_every, augment, flip, d_norm, r1_gamma]
        poll_outputs = [status_md, latest, losses, d_out, samples, frame, timelapse, seen, pinned, ctx.model, timer]
        light = dict(api_visibility="private", show_progress="hidden",  # never queued behind image work
                     concurrency_id=TRAINING_QUEUE, concurrency_limit=TRAINING_CONCURRENCY)
        dataset.change(lambda ds: gr.update(visible=ds == "folder"), dataset, folder, api_visibility="private", queue=False)
        start.click(guard(start_run), inputs, [run, timer], api_visibility="private")
        poll_inputs = [run, seen, ctx.header.session_models, frame, pinned]
        stop.click(guard(stop_run), run, None, **light).then(guard(poll), poll_inputs, poll_outputs, **light)
        resume.click(guard(resume_run), [run, minutes], [run, timer], api_visibility="private")
        attach.click(guard(lambda path: started(manager.attach(path))), attach_path, [run, timer], api_visibility="private")
        ctx.demo.load(list_runs, None, run, **light)
        gr.on([run.change, timer.tick], guard(poll), poll_inputs, poll_outputs, trigger_mode="always_last", **light)
        frame.input(guard(pick_frame), [samples, frame, run], [timelapse, pinned], api_visibility="private", show_progress="hidden",
                    trigger_mode="always_last", queue=False)
        gif_btn.click(guard(make_gif), run, gif_file, api_visibility="private")


def register_training_api(manager: TrainingManager, catalog: Catalog, out: OutputDir) -> None:
    """/train_start, /train_status, /train_stop, /train_resume for gradio_client (call inside gr.Blocks).
    A run that has stopped with a generator is added to the model list at once."""

    def train_start(dataset: str = "mnist", image_size: int = 32, arch: str = "dcgan", width: int = 32, batch_size: int = 64,
                    minutes: Optional[float] = 5.0, epochs: Optional[float] = None, max_steps: Optional[int] = None,
                    sample_every: int = 25, eval_every: int = 0, augment: str = "", flip: str = "auto", d_norm: str = "batch",
                    r1_gamma: float = 0.0, request: gr.Request = None) -> str:
        """Start a training run in a subprocess; returns its name. Data sets: those available offline on the server.
        For small data sets: augment (DiffAugment, e.g. "translation,cutout"), flip (auto/on/off), d_norm
        (batch/spectral), r1_gamma (R1 penalty, 0: off), all off by default as in the paper.
        On a public app, only this client (its session) may later stop or resume the run."""
        settings = TrainSettings(dataset=dataset, arch=arch, image_size=image_size, width=width, batch_size=batch_size,
                                 minutes=minutes, epochs=epochs, max_steps=max_steps, sample_every=sample_every, eval_every=eval_every,
                                 augment=augment, flip=flip, d_norm=d_norm, r1_gamma=r1_gamma)
        return manager.start(settings, owner=session_of(request))

    def train_status(run: str) -> tuple[dict, Optional[FileData]]:
        """({state, step, epoch, img_per_s, eta_s, images_seen, last_metrics, warnings, ...}, latest preview grid PNG)."""
        status = manager.status(run)
        if status["state"] not in ACTIVE_STATES and status["has_generator"]:
            service.refresh(catalog)
        grid = FileData(path=grid_copy(out, status["latest_grid"], run)) if status["latest_grid"] else None
        keep = ("name", "state", "step", "epoch", "img_per_s", "eta_s", "images_seen", "last_metrics", "warnings",
                "has_generator", "error", "log_tail")
        return {k: status[k] for k in keep}, grid

    def train_stop(run: str, request: gr.Request = None) -> dict:
        """Stop a run: it saves a checkpoint and exits; returns its final status."""
        status = manager.stop(run, session_of(request))
        service.refresh(catalog)
        return {k: status[k] for k in ("name", "state", "step")}

    def train_resume(run: str, minutes: Optional[float] = None, request: gr.Request = None) -> str:
        """Continue a stopped or finished run exactly from its last checkpoint, for up to `minutes` more."""
        return manager.resume(run, minutes, session_of(request))

    for fn in (train_start, train_status, train_stop, train_resume):
        gr.api(guard(fn), api_name=fn.__name__, concurrency_limit=TRAINING_CONCURRENCY, concurrency_id=TRAINING_QUEUE)
