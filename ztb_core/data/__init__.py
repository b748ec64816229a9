"""Market data: import, validation, store, multi-timeframe resampling, synthetic market, features.

Import the submodules directly (`from ztb_core.data.resample import resample`); this package
file stays empty of heavy imports so `import ztb_core.data` is cheap.
"""
