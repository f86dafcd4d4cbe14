"""Training: ``trainer.train(config, run_dir)`` and its parts.

    trainer.py     train(config, run_dir): one run, recorded in its run store
    loop.py        the training loop, read top to bottom; it emits records to callbacks
    callbacks.py   checkpoint, norm statistics, sharpness, landscape, robustness as callbacks
    recorder.py    the run store's callback: metrics.jsonl, status, summary.json
    setup.py       device, precision, data, model, optimizer, lr schedule
    step.py        one optimizer step (SAM.step with the BatchNorm hook, or the base step)
    lockstep.py    several runs interleaved step by step (train_group)
    stopping.py    Released: a worker's stop that ends no run (no torch)
    landscape.py   loss-landscape slices; slice_run.py  slices of a finished run
    telemetry.py   the loop's own records: step windows, clock, ETA
    checkpoint.py  atomic checkpoints, loaded as plain data, and exact resume
    data/          CIFAR, the synthetic set, the on-device loader
    sharpness.py   m-sharpness;  normstats.py  gamma/beta statistics;  hardware.py  what ran it
"""
