"""Export: a finished run -> a deploy bundle (needs the training extra). The formats are plug-ins in
`edgekd.export.formats`; the bundle itself (manifest, names, hashes) is `edgekd.bundle`, which the
torch-free runtime reads without this package.
"""
