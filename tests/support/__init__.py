"""Code the tests share: one tiny run config, the CIFAR-format writer, the browser driver.

Kept out of ``samon_core`` on purpose: the library has no code whose only caller is a test.
"""
