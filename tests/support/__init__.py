"""Code the tests share; a test module imports helpers from here, never from another test module.

The tiny run config, metric records built from the trainer's types, fake runs, claim results,
AppTest readers, the card-sentence checker, the CIFAR-format writer, the browser driver, ...
(ARCHITECTURE.md, ``tests/support/``). Kept out of ``samon_core`` on purpose: the library has no
code whose only caller is a test.
"""
