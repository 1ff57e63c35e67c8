"""Listings of image trees too large to hold in memory: files, labels and class names only.

Two layouts:
- class folders, `root/<class>/<image>` (torchvision's ImageFolder; ImageNet val sorted into
  folders): classes are the sorted folder names;
- a flat folder of images with a ground-truth file (ImageNet val as distributed): one line
  per image, `<file> <class>` or `<file>,<class>` (a header line is skipped), the file by
  its name or stem, the class a name (classes are then the sorted names in the file, for
  ImageNet the sorted wnids that torchvision and timm use) or a 0-based index. Kaggle's
  LOC_val_solution.csv (`ImageId,PredictionString`) reads as is: its first token is the wnid.
Nothing is decoded here; files are sorted, so the index of an image is fixed by the tree.
"""
from dataclasses import dataclass
from pathlib import Path

import torch

from selectivity.data.image_files import is_image_file
from selectivity.data.subsets import check_subset_request, name_keys, stratified_positions
from selectivity.errors import SelectivityError

LAYOUTS = "expected DIR/<class>/<image> folders, or a flat folder of images with --val-labels FILE"


@dataclass(frozen=True, eq=False)
class ImageList:
    """The files of an image tree, sorted, with their class indices."""

    root: Path
    files: tuple[Path, ...]
    labels: torch.Tensor  # [N] int64
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.files)

    def relative_names(self) -> list[str]:
        """Each file's path inside the tree ('n01440764/x.JPEG'): what identifies an image here."""
        return [path.relative_to(self.root).as_posix() for path in self.files]

    def stratified(self, count: int, seed: int = 0) -> "ImageList":
        """`count` images, each class in its share, chosen by a seeded hash of their paths in the tree
        (never the first `count`: trees are read class by class); the whole listing when count >= N."""
        check_subset_request(count, seed)
        if count >= len(self):
            return self
        positions, _ = stratified_positions(self.labels, name_keys(self.relative_names(), seed), count)
        return ImageList(self.root, tuple(self.files[i] for i in positions.tolist()), self.labels[positions],
                         self.class_names)


def _images_in(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if path.is_file() and is_image_file(path))


def list_class_folders(root: Path) -> ImageList:
    """`root/<class>/<image>`; an empty class folder is refused (it would be a class of no inputs)."""
    classes = sorted(entry.name for entry in root.iterdir() if entry.is_dir() and not entry.name.startswith("."))
    files, labels = [], []
    for label, name in enumerate(classes):
        found = _images_in(root / name)
        if not found:
            raise SelectivityError(f"class folder {root / name} holds no image files; "
                                   "expected at least one image per class folder (or remove the folder)")
        files += found
        labels += [label] * len(found)
    return ImageList(root, tuple(files), torch.tensor(labels, dtype=torch.int64), tuple(classes))


def read_ground_truth(path: Path) -> dict[str, str]:
    """{file name or stem: class token} from a two-column ground-truth file (see the module docstring)."""
    if not path.is_file():
        raise SelectivityError(f"ground-truth file {path} is missing; expected a file of '<image> <class>' lines")
    entries: dict[str, str] = {}
    # utf-8-sig: a byte-order mark (as spreadsheet exports write) is not part of the first image name
    lines = [line.strip() for line in path.read_text(encoding="utf-8-sig", errors="replace").splitlines()]
    for number, line in enumerate(lines, 1):
        if not line:
            continue
        fields = line.replace(",", " ").split()
        if number == 1 and fields[:1] in (["ImageId"], ["file"], ["filename"], ["image"]):
            continue  # a header line
        if len(fields) < 2:
            raise SelectivityError(f"{path} line {number} is {line[:80]!r}; expected '<image> <class>' "
                                   "(or <image>,<class>)")
        if fields[0] in entries:
            raise SelectivityError(f"{path} lists {fields[0]} twice (line {number}); expected one line per image")
        entries[fields[0]] = fields[1]
    if not entries:
        raise SelectivityError(f"{path} has no lines; expected one '<image> <class>' line per image")
    return entries


def list_with_ground_truth(root: Path, ground_truth: Path) -> ImageList:
    """The images of `root` (flat, or in subfolders) labelled by `ground_truth`; every image needs
    exactly one line and every line an image, else one line saying how many differ and an example."""
    entries = read_ground_truth(ground_truth)
    images = sorted(path for path in root.rglob("*") if path.is_file() and is_image_file(path))
    if not images:
        raise SelectivityError(f"{root} holds no image files; {LAYOUTS}")
    keys = [path.name if path.name in entries else path.stem for path in images]
    unlabelled = [path for path, key in zip(images, keys) if key not in entries]
    missing = sorted(set(entries) - set(keys))
    if unlabelled or missing:
        example = f"e.g. {unlabelled[0].name} has no line" if unlabelled else f"e.g. {missing[0]} is not in {root}"
        raise SelectivityError(f"ground-truth file {ground_truth} does not match {root}: {len(unlabelled)} image(s) "
                               f"without a line, {len(missing)} line(s) without an image ({example}); "
                               "expected one line per image file")
    tokens = [entries[key] for key in keys]
    if all(token.isdigit() for token in tokens):
        indices = [int(token) for token in tokens]
        classes = tuple(str(index) for index in range(max(indices) + 1))
    else:
        classes = tuple(sorted(set(tokens)))
        position = {name: index for index, name in enumerate(classes)}
        indices = [position[token] for token in tokens]
    return ImageList(root, tuple(images), torch.tensor(indices, dtype=torch.int64), classes)


def list_image_tree(root: str | Path, ground_truth: str | Path | None = None) -> ImageList:
    """The listing of `root` in either layout (ground-truth file given: the flat layout)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise SelectivityError(f"image folder {root} is missing; {LAYOUTS}")
    listing = list_with_ground_truth(root, Path(ground_truth).expanduser()) if ground_truth else list_class_folders(root)
    if not len(listing):
        loose = len(_images_in(root))
        hint = f" ({loose} images lie directly in it: pass --val-labels FILE)" if loose else ""
        raise SelectivityError(f"{root} has no class folders{hint}; {LAYOUTS}")
    if len(listing.class_names) < 2:
        raise SelectivityError(f"{root} holds {len(listing.class_names)} class; SI needs at least 2 classes")
    return listing
