"""The readers of published formats, one module each (named in the one registry, convert/registry.py), and what
they share: the writer, the image checks, the split rules, the options' schema base, the corrections overlay.

A recipe names its reader (`data.converter`); `yolo_tools convert FORMAT SRC DST` and `evaluate --data SRC
--format F` name one by its format (`registry.FORMATS`). Each reader module has `samples(src, recipe)` and
`Options`, the schema of its `data.options` (`convert.options.ConverterOptions`); the orchestrator that turns a
recipe into a dataset with them is `yolo_tools.conversion`, one floor up, and the check a recipe's `data` gets
is `convert.checks`.
"""
