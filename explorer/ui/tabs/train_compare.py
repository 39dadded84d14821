"""The Train tab's "Compare runs" block: the curves of up to four runs overlaid, one colour per run.

Any run the app knows (its runs folder, finished runs included, and attached ones) can be picked; the curves come
from explorer.compare and are redrawn every few seconds while a picked run still trains, only when a file changed.
"""
from pathlib import Path
from typing import Any

import gradio as gr

from dcgan import rundir

from ...compare import MAX_COMPARE_RUNS, TRAINING_CURVES, X_AXES, compare_curves, overlay_frame, quality_metrics
from ...training import ACTIVE_STATES, TrainingError, TrainingManager
from ..context import TRAINING_QUEUE, guard

REDRAW_SECONDS = 5.0  # while a picked run trains: its curves grow by a few points a second, no need to redraw faster
RUN_COLOURS = ["#4c78a8", "#f58518", "#54a24b", "#e45756"]  # one per pick, so a run has the same colour on every plot
Y_LIMITS = {"D_x": [0, 1], "D_G_z": [0, 1]}  # D's outputs are probabilities


def _picked(manager: TrainingManager, names: Any) -> tuple[dict[str, Path], str]:
    """The runs to draw ({name: run_dir}, at most MAX_COMPARE_RUNS, in the order picked) and a message saying which
    were left out: those past the limit, and any run deleted since the list was shown."""
    names = list(dict.fromkeys(names or []))
    notes = []
    if len(names) > MAX_COMPARE_RUNS:
        notes.append(f"{len(names)} runs picked; comparing the first {MAX_COMPARE_RUNS} and leaving out "
                     f"{', '.join(names[MAX_COMPARE_RUNS:])}: more lines than that on one plot cannot be told apart")
    runs, gone = {}, []
    for name in names[:MAX_COMPARE_RUNS]:
        try:
            runs[name] = manager.run_dir(name)
        except TrainingError:
            gone.append(name)
    if gone:
        notes.append(f"{', '.join(gone)} is no longer in the runs folder")
    return runs, "; ".join(notes)


def _redraw_key(runs: dict[str, Path], x_label: str, quality: Any) -> list:
    """What a redraw depends on: the picks, the axes, and each run's metrics file (size and time), so a poll that
    finds nothing new sends nothing."""
    key: list = [x_label, quality]
    for name, run_dir in runs.items():
        try:
            info = (run_dir / rundir.METRICS_FILE).stat()
            key.append([name, info.st_size, info.st_mtime_ns])
        except OSError:
            key.append([name, None, None])
    return key


def _training(manager: TrainingManager, runs: dict[str, Path]) -> bool:
    """Whether a picked run may still log (started here, or a CLI run whose status file says so): a cheap check, no
    metrics file is read."""
    running = manager.running()
    return any(name in running or rundir.read_status(run_dir).get("state") in ACTIVE_STATES for name, run_dir in runs.items())


def compare_runs(manager: TrainingManager, concurrency_limit: int) -> None:
    """Build the block (call inside the Train tab) and wire it; ``concurrency_limit``: the Train tab's, as it shares its queue."""
    with gr.Accordion("Compare runs", open=True, elem_id="compare"):
        with gr.Row():
            picked = gr.Dropdown(manager.list_runs(), value=[], multiselect=True, max_choices=MAX_COMPARE_RUNS, scale=3,
                                 label="Compare runs", info=f"up to {MAX_COMPARE_RUNS}, finished ones too: one colour per run",
                                 elem_id="compare-runs")
            x_axis = gr.Radio(list(X_AXES), value="step", label="x axis", scale=1, elem_id="compare-x")
            quality = gr.Dropdown([], value=None, label="Quality metric", info="runs trained with --eval-every", scale=1,
                                  elem_id="compare-quality")
        note = gr.Markdown("", elem_id="compare-note")
        plots = {}
        for row in (("lossD", "lossG"), ("D_x", "D_G_z")):
            with gr.Row():
                for key in row:  # no height: with one, Gradio clips the legend naming the runs
                    plots[key] = gr.LinePlot(x="x", y="value", color="run", label=TRAINING_CURVES[key], x_title="step",
                                             y_title=TRAINING_CURVES[key], y_lim=Y_LIMITS.get(key), elem_id=f"compare-{key}")
        quality_plot = gr.LinePlot(x="x", y="value", color="run", label="Quality metric", x_title="step", visible=False,
                                   elem_id="compare-quality-plot")
    timer = gr.Timer(REDRAW_SECONDS, active=False)
    drawn = gr.State([])   # what the plots show (see _redraw_key)
    looks = gr.State([])   # per plot: the props sent after its data (axis titles, each run's colour)

    def plot(frame, metric: str | None, x_label: str, picked_runs: list[str], **shown: Any) -> tuple[gr.LinePlot, dict]:
        """One overlaid plot's data (cleared while it has no point) and its look: axis titles and the colour of each
        run it draws (the colour of its pick, so a run keeps it on every plot)."""
        rows = overlay_frame(frame, metric, X_AXES[x_label]) if metric else None
        look = {"x_title": x_label, **({"y_title": metric} if "label" in shown else {})}
        if rows is None or rows.empty:
            return gr.LinePlot(None, **shown), {**look, "color_map": None}
        present = set(rows["run"])
        colours = {run: colour for run, colour in zip(picked_runs, RUN_COLOURS) if run in present}
        return gr.LinePlot(rows, **shown), {**look, "color_map": colours}

    def draw(names, x_label, metric, before):
        runs, message = _picked(manager, names)
        if message:
            gr.Warning(message)
        now, training = _redraw_key(runs, x_label, metric), _training(manager, runs)
        if now == before:
            return [gr.skip()] * (len(outputs) - 1) + [gr.Timer(active=training)]
        frame = compare_curves(runs)
        found = quality_metrics(frame)
        # the user's pick is left alone (a redraw answered after a newer pick would put the old one back); only a
        # metric the picked runs lack is replaced
        kept = metric in found
        metric = metric if kept else ("fid" if "fid" in found else (found[0] if found else None))
        metric_box = gr.update(choices=found) if kept else gr.update(choices=found, value=metric)
        drawn_plots = [plot(frame, key, x_label, list(runs)) for key in plots]
        drawn_plots.append(plot(frame, metric, x_label, list(runs), label=metric or "Quality metric", visible=bool(metric)))
        curves, look = zip(*drawn_plots)
        return [gr.update(value=list(runs)) if message else gr.skip(), message and f"> **Note:** {message}", *curves[:-1],
                metric_box, curves[-1], now, list(look), gr.Timer(active=training)]

    def restyle(look_of_each):
        """Gradio's plot rebuilds its chart (and takes its legend from the data) when a prop such as an axis title or
        the colour map changes, but only swaps the data in when the value alone does; a prop changed together with
        the value rebuilds it with the old data. So the data goes first and the look follows, one round trip later,
        and changes (a rebuild) exactly when the axis or the runs a plot draws do."""
        return [gr.update(**look) for look in look_of_each] if look_of_each else [gr.skip()] * (len(plots) + 1)

    outputs = [picked, note, *plots.values(), quality, quality_plot, drawn, looks, timer]
    light = dict(api_visibility="private", show_progress="hidden", concurrency_id=TRAINING_QUEUE, concurrency_limit=concurrency_limit)
    picked.focus(lambda: gr.update(choices=manager.list_runs()), None, picked, queue=False, api_visibility="private")
    for redraw in (gr.on([picked.change, x_axis.change, quality.input], guard(lambda names, x, metric: draw(names, x, metric, None)),
                         [picked, x_axis, quality], outputs, trigger_mode="always_last", **light),
                   timer.tick(guard(draw), [picked, x_axis, quality, drawn], outputs, trigger_mode="always_last", **light)):
        redraw.then(restyle, looks, [*plots.values(), quality_plot], **light)
