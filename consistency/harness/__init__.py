"""The training harness both papers' stages run in: the settings (config, flags), the stage interface and registry
(stage), the training loop with checkpoints, summaries, evaluation and profiling (trainer), distribution, the
optimizer and schedules (optimization), and the run summary (report). `consistency.train` and `consistency.evaluate`
are its commands."""
