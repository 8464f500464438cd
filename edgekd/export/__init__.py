"""Deploy bundles: `export` (needs the training extra) and the torch-free manifest reader in `bundle`.

Importing this package imports nothing heavy, so the runtime can read bundles through
`edgekd.export.bundle` on a device without PyTorch.
"""
