"""A dataset folder in, a training set out: the ComfyUI-free core of the dataset nodes.

A folder of images with captions beside them (`cat_001.png` + `cat_001.txt`) is listed
(`scan`), read a page at a time into one padded batch (`page`: `select`, `load`, `assemble`,
`crop_back`), decided on (`journal`: `claim`, `decide`, `progress`), and written back as a
trainer reads it (`save`). `roots` limits the folders a shared server reads and writes;
`buckets` is sd-scripts' aspect-ratio bucketing. Nothing here imports ComfyUI.

Import from the modules (`from gates.dataset.scan import scan`): the package re-exports
nothing, so `gates.dataset.scan` is always the module, never the function of the same name.
"""
