"""Training: ``trainer.train(config, run_dir)`` and its parts.

    trainer.py     train(): status, summary, the outcome of a run (finished, cancelled, ...)
    setup.py       device, precision, data, model, optimizer, lr schedule
    step.py        one optimizer step (SAM.step with the BatchNorm hook, or the base step)
    loop.py        the epoch / step loop
    lockstep.py    several runs interleaved step by step (train_group); run.py a run's status
    landscape.py   loss-landscape slices; slice_run.py  slices of a finished run
    telemetry.py   the metric records (samon_core/records.py)
    checkpoint.py  atomic checkpoints, loaded as plain data, and exact resume
    context.py     what the parts share
    data/          CIFAR, the synthetic set, the on-device loader
    sharpness.py   m-sharpness;  normstats.py  gamma/beta statistics;  hardware.py  what ran it
"""
