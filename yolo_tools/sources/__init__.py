"""Find a recipe's raw data under the data root, pull it from Roboflow or a PACS (DICOMweb) on first use, or say
exactly how to get it."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from yolo_tools.convert.checks import check
from yolo_tools.errors import UserError
from yolo_tools.locations import DATA_ENV, pull_root, raw_folder, searched_roots
from yolo_tools.recipe import Recipe, Source, bundled_recipe, load_recipe


def default_folder(source: Source) -> str:
    """Where a source lives under the data root when the recipe does not say."""
    if source.path:
        return source.path
    if source.kind == "dicomweb":
        from yolo_tools.sources import dicomweb

        return dicomweb.default_folder(dicomweb.address_of(source))
    return f"{source.project}-v{source.version}"


def _path(source: Source, root: str | Path | None, for_pull: bool = False) -> Path:
    folder = Path(default_folder(source))
    if folder.is_absolute():
        return folder
    return pull_root(root) / folder if for_pull else raw_folder(folder, root)


def locate(recipe: Recipe, root: str | Path | None = None) -> Path | None:
    """The folder holding the recipe's raw data as published (None for synthetic data).

    A Roboflow source that is not there yet is pulled into the data root when an API key is set.
    """
    source = recipe.data.source
    if source.kind == "synthetic":
        return None
    if source.kind == "dicomweb":  # a cached copy: fetched once, resumed where a pull stopped (dicomweb.pull)
        from yolo_tools.sources import dicomweb

        return dicomweb.pull(dicomweb.address_of(source), _path(source, root, for_pull=True), source.verify_tls, refresh=False)
    path = _path(source, root)
    if path.is_dir():
        return path
    if source.kind == "roboflow":
        from yolo_tools.sources import roboflow_pull

        if roboflow_pull.api_key(source.workspace):
            target = _path(source, root, for_pull=True)
            return roboflow_pull.pull(source, target, roboflow_pull.export_format(recipe.task, source.format))
    folder = default_folder(source)
    where = f"at {path}" if Path(folder).is_absolute() else f"as '{folder}' in {searched_roots(root)}"
    how = [f"{recipe.path}: data for '{recipe.name}' not found {where}"]
    if source.kind == "roboflow":
        command = f"yolo_tools pull {roboflow_pull.ref_of(source)}"
        if source.path:
            command += f" --path {source.path}"
        if root:
            command += f" --data-root {root}"
        how.append(f"  It is pulled from Roboflow on first use once a key is there: {roboflow_pull.HOW_TO_SET_KEY}")
        how.append(f"  (or pull it beforehand: {command})")
    how.append(f"  Or point {DATA_ENV} (or --data-root) at the folder that holds '{folder}'")
    if source.url:
        how.append(f"  or download it by hand from {source.url}")
    raise UserError("\n".join(how))


def pull(dataset: str, root: str | Path | None = None, fmt: str | None = None, folder: str | None = None,
         force: bool = False, verify_tls: bool = True) -> Path:
    """`yolo_tools pull`: a Roboflow dataset version, named (WORKSPACE/PROJECT/VERSION or URL) or a recipe's, or
    studies of a PACS (a DICOMweb study or QIDO-RS URL, or a recipe with a dicomweb source)."""
    from yolo_tools.sources import dicomweb, roboflow_pull

    if dicomweb.is_dicomweb_url(dataset) and "/studies" in urlsplit(dataset).path:
        if fmt or force:
            raise UserError(f"--{'format' if fmt else 'force'} is for Roboflow pulls; a DICOMweb pull fetches only series not yet here")
        address = dicomweb.parse_url(dataset)
        target = _path(Source(path=folder or dicomweb.default_folder(address)), root, for_pull=True)
        return dicomweb.pull(address, target, verify_tls)
    task = "detect"
    is_recipe = dataset.endswith((".yaml", ".yml")) or Path(dataset).is_file()
    if not is_recipe and ("/" in dataset or ":" in dataset):
        source = roboflow_pull.parse_ref(dataset)
    elif not is_recipe and not bundled_recipe(dataset).is_file():
        raise UserError(f"'{dataset}': neither a recipe nor a dataset; {roboflow_pull.ACCEPTED}")
    else:
        recipe = check(load_recipe(dataset))
        source, task = recipe.data.source, recipe.task
        if source.kind == "dicomweb":
            address = dicomweb.address_of(source)
            target = _path(source.model_copy(update={"path": folder or default_folder(source)}), root, for_pull=True)
            return dicomweb.pull(address, target, source.verify_tls and verify_tls)
        if source.kind != "roboflow":
            raise UserError(f"{recipe.path}: data.source.kind is '{source.kind}', not roboflow or dicomweb; there is nothing to pull")
    source = source.model_copy(update={k: v for k, v in {"path": folder, "format": fmt}.items() if v})
    target = _path(source, root, for_pull=True)
    return roboflow_pull.pull(source, target, roboflow_pull.export_format(task, source.format), force)
