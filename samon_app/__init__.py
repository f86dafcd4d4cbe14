"""The pages' view models: torch-free, streamlit-free preparation of what the app shows.

One concern per module (no streamlit, no torch; pandas and plotly only where needed):

* ``vocabulary``: the form's own words (rho inputs, devices, variant names); the methods,
  models, datasets and colours themselves come from ``samon_core.catalog``;
* ``forms``: the Launch form (defaults, presets, form -> RunConfigs with errors per field);
* ``estimates``: time estimates calibrated on finished runs, the launch summary;
* ``owner``: the user name typed in the sidebar;
* ``urlparams``: the query parameters of a link, checked before any widget sees them;
* ``markup``: user strings as literal text in Markdown, the method's coloured dot;
* ``reader``: the shared, incremental reader of run metrics and runs as the pages show them;
* ``progress``: a run's progress, ETA and what went wrong;
* ``series``: smoothing, thinning, seed groups, mean +/- std across seeds;
* ``tables``: comparison groups, the results table in the paper's format, step speed;
* ``gamma``: gamma histograms on fixed axes, per-epoch and per-layer means;
* ``export``: CSV / JSON downloads;
* ``formatting``: durations, percentages, mean +/- std text;
* ``speed``: cost ratios between runs trained in lockstep;
* ``landscape``: the loss-landscape slices and the sentence that reads them;
* ``playground``: the Playground's figures and sentences (``samon_core.toy``);
* ``charts``: the plotly figures built from all of the above.
"""
