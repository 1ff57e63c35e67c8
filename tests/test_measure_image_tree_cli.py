"""`selectivity measure --image-tree` end to end: a class-ordered tree of variable-size images,
streamed through worker processes, gives the same table read in another order, and equals
metrics computed here from activations captured independently (sklearn, numpy)."""
import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from sklearn.metrics import mutual_info_score, roc_auc_score

from selectivity.models import create_model
from tests.reference import reference_selectivity

NUM_CLASSES, PER_CLASS, CROP, RESIZE, BINS = 4, 9, 24, 28, 6
METRICS = ["si", "d_prime", "auc", "mutual_information", "lifetime_sparseness", "mean_activation", "preferred_class"]


def planted_image(rng, label):
    """Variable size and mode; each class tints one colour channel (or darkens), so units differ by class."""
    width, height = (int(v) for v in rng.integers(30, 90, 2))
    pixels = rng.integers(0, 120, (height, width, 3)).astype(np.int64)
    if label < 3:
        pixels[..., label] += 120
    image = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
    return image.convert("L").convert("RGB") if rng.random() < 0.2 else image  # some grey images


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    """The same images twice: class folders (read class by class) and a flat folder whose random
    names interleave the classes, with a ground-truth file; plus small_cnn weights."""
    root = tmp_path_factory.mktemp("trees")
    rng = np.random.default_rng(0)
    names = rng.permutation(NUM_CLASSES * PER_CLASS)
    truth = ["file,class"]
    for label in range(NUM_CLASSES):
        for i in range(PER_CLASS):
            image = planted_image(rng, label)
            (root / "sorted" / f"class_{label}").mkdir(parents=True, exist_ok=True)
            image.save(root / "sorted" / f"class_{label}" / f"{i:02d}.jpg", quality=95)
            flat_name = f"val_{names[label * PER_CLASS + i]:03d}.jpg"
            (root / "flat").mkdir(exist_ok=True)
            image.save(root / "flat" / flat_name, quality=95)
            truth.append(f"{flat_name},class_{label}")
    (root / "truth.csv").write_text("\n".join(truth) + "\n")
    torch.manual_seed(0)
    model = create_model("small_cnn", num_classes=NUM_CLASSES, in_channels=3)
    torch.save(model.state_dict(), root / "weights.pt")
    return root


def measure(root, tree, out, *extra):
    command = [sys.executable, "-m", "selectivity", "measure", "--model", "small_cnn", "--weights",
               str(root / "weights.pt"), "--image-tree", str(root / tree), "--normalize", "half", "--crop", str(CROP),
               "--resize", str(RESIZE), "--shuffles", "3", "--bins", str(BINS), "--no-progress", "--device", "cpu",
               "--out", str(out), *extra]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return pd.read_csv(out / "units.csv"), json.loads((out / "summary.json").read_text()), result


@pytest.fixture(scope="module")
def sorted_run(trees):
    return measure(trees, "sorted", trees / "out-sorted", "--batch-size", "7", "--workers", "2")


def reference_responses(root):
    """Activations of small_cnn's ReLUs per image, captured here with plain forward hooks on
    images decoded by torchvision's own Resize + CenterCrop: nothing of selectivity's pipeline."""
    import torchvision.transforms as T

    model = create_model("small_cnn", num_classes=NUM_CLASSES, in_channels=3)
    model.load_state_dict(torch.load(root / "weights.pt"))
    model.eval()
    transform = T.Compose([T.Resize(RESIZE), T.CenterCrop(CROP), T.PILToTensor()])
    captured = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ReLU):
            module.register_forward_hook(lambda m, i, o, name=name: captured.setdefault(name, []).append(
                (o.mean((2, 3)) if o.dim() == 4 else o).double()))
    labels = []
    with torch.no_grad():
        for label in range(NUM_CLASSES):
            for i in range(PER_CLASS):
                with Image.open(root / "sorted" / f"class_{label}" / f"{i:02d}.jpg") as image:
                    pixels = transform(image.convert("RGB")).float() / 255.0
                model(((pixels - 0.5) / 0.5).unsqueeze(0))
                labels.append(label)
    return {name: torch.cat(parts).numpy() for name, parts in captured.items()}, np.array(labels)


def test_metrics_equal_sklearn_and_numpy_on_independently_captured_activations(trees, sorted_run):
    units, summary, _ = sorted_run
    responses, labels = reference_responses(trees)
    assert list(dict.fromkeys(units["layer"])) == list(responses)
    for layer, r in responses.items():
        table = units[units["layer"] == layer]
        np.testing.assert_allclose(table["si"], reference_selectivity(r, labels, NUM_CLASSES), rtol=1e-4, atol=1e-6)
        means = np.stack([r[labels == k].mean(0) for k in range(NUM_CLASSES)])  # [K, U]
        preferred = means.argmax(0)
        assert table["preferred_class"].tolist() == preferred.tolist()
        for u, k in enumerate(preferred):
            x, rest = r[labels == k, u], r[labels != k, u]
            spread = math.sqrt((x.var() + rest.var()) / 2)
            d_prime = (x.mean() - rest.mean()) / spread if spread > 0 else 0.0
            assert table["d_prime"].iloc[u] == pytest.approx(d_prime, rel=1e-4, abs=1e-5)
            if r[:, u].max() > 0:
                auc = roc_auc_score(labels == k, r[:, u])
                assert table["auc"].iloc[u] == pytest.approx(auc, abs=1e-9)
            # the documented bins: 0 for r <= 0, else 1 + floor(r / (top / (B - 1))), at most B - 1
            top = r[:, u].max()
            bins = np.where(r[:, u] > 0, np.clip(np.floor(r[:, u] / (top / (BINS - 1))) + 1, 1, BINS - 1), 0) \
                if top > 0 else np.zeros(len(labels))
            assert table["mutual_information"].iloc[u] == pytest.approx(
                mutual_info_score(labels, bins) / math.log(2), abs=1e-6)
    assert summary["num_inputs"] == NUM_CLASSES * PER_CLASS
    assert summary["inputs_per_class"] == {str(k): PER_CLASS for k in range(NUM_CLASSES)}
    assert summary["preprocessing"] == {"resize": RESIZE, "crop": CROP, "interpolation": "bilinear", "squash": False}


def test_the_same_images_read_in_another_order_and_batch_size_give_the_same_table(trees, sorted_run):
    units, _, _ = sorted_run
    flat, summary, _ = measure(trees, "flat", trees / "out-flat", "--val-labels", str(trees / "truth.csv"),
                               "--batch-size", "5", "--workers", "0")
    assert summary["image_tree"]["ground_truth"].endswith("truth.csv")
    for metric in METRICS:  # the nulls are seeded draws over each listing's order: equal in law, not in value
        np.testing.assert_allclose(flat[metric], units[metric], rtol=1e-5, atol=1e-7, err_msg=metric)


def test_a_limit_is_a_class_stratified_sample_not_the_first_files(trees, sorted_run, tmp_path):
    units, summary, _ = measure(trees, "sorted", tmp_path / "out", "--limit", "20", "--workers", "1")
    assert summary["inputs_per_class"] == {str(k): 5 for k in range(NUM_CLASSES)}  # 20 of 4 x 9, not 9+9+2
    assert summary["subset"] == "class-stratified by path hash, seed 0"
    assert summary["num_inputs"] == 20 and summary["image_tree"]["images_listed"] == NUM_CLASSES * PER_CLASS
    assert not np.allclose(units["si"], sorted_run[0]["si"])  # a different set of images than the whole tree


def test_the_damaged_file_among_many_is_named_and_the_rest_measured(trees, tmp_path):
    root = tmp_path / "tree"
    for label in range(2):
        (root / f"c{label}").mkdir(parents=True)
        for i in range(4):
            source = trees / "sorted" / f"class_{label}" / f"{i:02d}.jpg"
            (root / f"c{label}" / source.name).write_bytes(source.read_bytes())
    (root / "c1" / "zz.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    weights = tmp_path / "w.pt"
    torch.manual_seed(1)
    torch.save(create_model("small_cnn", num_classes=2, in_channels=3).state_dict(), weights)
    command = [sys.executable, "-m", "selectivity", "measure", "--model", "small_cnn", "--weights", str(weights),
               "--image-tree", str(root), "--normalize", "half", "--crop", "16", "--no-progress", "--device", "cpu",
               "--out", str(tmp_path / "out"), "--workers", "0"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "1 of 9 image(s)" in result.stderr and "c1/zz.jpg" in result.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["num_inputs"] == 8 and summary["inputs_per_class"] == {"0": 4, "1": 4}
    assert [entry.split(" (")[0] for entry in summary["image_tree"]["unreadable"]] == ["c1/zz.jpg"]


@pytest.mark.parametrize("extra, message", [
    (["--dataset", "digits"], "--image-tree is the data to measure; expected it without --dataset"),
    (["--workers", "-1"], "--workers -1 is negative"),
    (["--crop", "0"], "--crop 0 is not positive"),
    (["--resize", "8", "--crop", "16"], "resize 8, crop 16; expected 1 <= crop <= resize"),
    (["--limit", "1"], "the 1 inputs of imagetree-sorted hold 1 class; SI needs at least 2 classes"),
])
def test_bad_tree_flags_are_refused_in_one_line(trees, tmp_path, extra, message):
    command = [sys.executable, "-m", "selectivity", "measure", "--model", "small_cnn", "--weights",
               str(trees / "weights.pt"), "--image-tree", str(trees / "sorted"), "--normalize", "half",
               "--no-progress", "--out", str(tmp_path / "out"), *extra]
    if "--crop" not in extra:
        command += ["--crop", "16"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and message in result.stderr, result.stderr[-1500:]
    assert len([line for line in result.stderr.splitlines() if "error" in line]) == 1
    assert not (tmp_path / "out" / "summary.json").exists()


def test_our_models_on_a_tree_need_their_input_size_and_statistics(trees, tmp_path):
    base = [sys.executable, "-m", "selectivity", "measure", "--model", "small_cnn", "--weights",
            str(trees / "weights.pt"), "--image-tree", str(trees / "sorted"), "--no-progress",
            "--out", str(tmp_path / "out")]
    no_size = subprocess.run(base + ["--normalize", "half"], capture_output=True, text=True, timeout=120)
    assert no_size.returncode != 0 and "states no input size; expected --crop N" in no_size.stderr
    no_stats = subprocess.run(base + ["--crop", "16"], capture_output=True, text=True, timeout=120)
    assert no_stats.returncode != 0 and "expected --normalize" in no_stats.stderr
    flags_alone = subprocess.run([sys.executable, "-m", "selectivity", "measure", "--model", "small_cnn",
                                  "--dataset", "digits", "--crop", "16", "--out", str(tmp_path / "o2")],
                                 capture_output=True, text=True, timeout=120)
    assert flags_alone.returncode != 0 and "--crop apply to --image-tree DIR" in flags_alone.stderr


def test_an_interrupted_measurement_keeps_the_last_one_removes_its_spill_and_a_rerun_completes(trees, tmp_path, monkeypatch):
    """Ctrl-C mid-pass: the previous complete measurement in --out is kept as it was (outputs are only
    written once the pass is done), the spill file is removed, and the next run writes it again."""
    from selectivity.cli import main
    from selectivity.data.streamed import StreamedImages

    out = tmp_path / "out"
    argv = ["measure", "--model", "small_cnn", "--weights", str(trees / "weights.pt"), "--image-tree",
            str(trees / "sorted"), "--normalize", "half", "--crop", "16", "--shuffles", "2", "--no-progress",
            "--workers", "0", "--batch-size", "8", "--out", str(out)]
    assert main(argv) == 0
    first = pd.read_csv(out / "units.csv")
    original = StreamedImages.batches

    def interrupted(self, batch_size, workers=0):
        for number, batch in enumerate(original(self, batch_size, workers)):
            if number == 2:
                assert list(out.glob("selectivity-spill-*/responses.npy"))  # the pass spills to disk
                raise KeyboardInterrupt
            yield batch

    monkeypatch.setattr(StreamedImages, "batches", interrupted)
    from selectivity.metrics import shuffles

    keep_in_ram = shuffles.ShuffledAccumulator.__init__

    def spill_to_disk(self, *args, **kwargs):
        keep_in_ram(self, *args, **{**kwargs, "in_memory_bytes": 0})

    monkeypatch.setattr(shuffles.ShuffledAccumulator, "__init__", spill_to_disk)
    assert main(argv) == 130  # what a shell reports for Ctrl-C
    pd.testing.assert_frame_equal(pd.read_csv(out / "units.csv"), first)
    assert (out / "summary.json").exists()
    assert not list(out.glob("selectivity-spill-*"))
    monkeypatch.setattr(StreamedImages, "batches", original)
    assert main(argv) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out / "units.csv"), first)
    assert json.loads((out / "summary.json").read_text())["num_inputs"] == NUM_CLASSES * PER_CLASS


@pytest.mark.parametrize("head, code, message", [
    (3, 2, "gives logits of shape [1, 3] but imagetree-sorted has 4 classes; expected [B, K] with K >= 4"),
    (0, 2, "--model-option num_classes=0; expected an integer >= 1"),
    ("abc", 2, "--model-option num_classes='abc'; expected an integer >= 1"),
    (6, 0, "has 6 outputs but imagetree-sorted has 4 classes; accuracy and loss are over its first 4 outputs"),
])
def test_a_head_with_another_class_count_than_the_tree_is_refused_or_named(trees, tmp_path, head, code, message):
    command = [sys.executable, "-m", "selectivity", "measure", "--timm", "test_resnet", "--model-option",
               f"num_classes={head}", "--image-tree", str(trees / "sorted"), "--crop", "32", "--resize", "32",
               "--no-progress", "--workers", "0", "--out", str(tmp_path / "out")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == code and message in result.stderr, result.stderr[-1500:]
    lines = [line for line in result.stderr.splitlines() if ": error: " in line or ": warning: " in line]
    assert len(lines) == 1, lines
    if code == 0:  # accuracy over the 4 classes the tree has: below 1, and the logits file has 4 columns
        summary = json.loads((tmp_path / "out" / "summary.json").read_text())
        assert 0 <= summary["accuracy"] <= 1 and summary["num_classes"] == 4
    else:
        assert not (tmp_path / "out").exists()
