"""Benchmark `nnunet-ext predict --spec` against the two-step nnU-Net route.

Usage: .venv/bin/python benchmarks/bench_predict.py [--small] [--cases N] [--repeats R] [--tta]
       [--scenario two_members|one_member|export_heavy] [--workers N]
       [--executor ray [--ray-address auto|HOST:PORT] [--ray-cpus-per-worker N]]

Scenarios (``--workers N`` adds the route ``ours_jN``: ``predict -j N``, the pipeline):

- ``two_members`` (default): the two-step route below against ``predict --spec``;
- ``one_member``: ``nnUNetv2_predict_from_modelfolder`` (labels only, ``-npp 1 -nps N-1``)
  against ``predict -m`` with the first model;
- ``export_heavy``: a model whose plans spacing is twice the images' (the network runs on an
  eighth of the voxels, 4 classes are resampled back to the fine grid): ``predict -m -j 1``
  (the serial loop, route ``ours``) against ``-j N``; stands in for a GPU, where export is the
  long step.

Generates (once, cached under benchmarks/_data/predict/) synthetic 64x224x224 images and two
small untrained 3d_fullres model folders (plans.json written here, random weights saved as
``fold_0/checkpoint_final.pth`` in nnU-Net's checkpoint format), then runs alternately, on the
same images and device (cpu):

(a) ``nnUNetv2_predict_from_modelfolder --save_probabilities`` per member (``-npp 1 -nps 1``)
    followed by ``nnUNetv2_ensemble -np 1``;
(b) ``nnunet-ext predict --spec`` (equal weights);
(c) with ``--executor ray``, also (b) with ``--executor ray`` (``ours_ray``: an actor pool; a
    local Ray is started per run unless ``--ray-address`` names a running one).

For each it reports wall time, peak memory of the whole process tree (sum of the PSS of the
command and all its descendants, sampled every 50 ms from /proc/PID/smaps_rollup) and the bytes
each route leaves on disk (intermediate: the member folders of (a); final: the label folder).
It checks that both routes wrote identical label maps. Test-time mirroring is off by default
(``--tta`` turns it on for both) so that an untrained small network on 2 CPU cores measures
the pipeline, not the convolutions.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent
DATA = ROOT / "_data" / "predict"
BIN = Path(sys.executable).parent
SIZES = {"full": (64, 224, 224), "small": (32, 112, 112)}
LABELS = {"background": 0, "myocardium": 1, "LV": 2, "RV": 3}


def configuration(shape: tuple[int, int, int], spacing: float = 1.0) -> dict[str, Any]:
    """A small 3d_fullres configuration (3 stages, 8-32 features, 1 conv per stage)."""
    shape = (round(shape[0] / spacing), round(shape[1] / spacing), round(shape[2] / spacing))
    patch = [min(64, shape[0]), min(128, shape[1]), min(128, shape[2])]
    return {
        "data_identifier": "nnUNetPlans_3d_fullres",
        "preprocessor_name": "DefaultPreprocessor",
        "batch_size": 2,
        "patch_size": patch,
        "median_image_size_in_voxels": [float(s) for s in shape],
        "spacing": [spacing] * 3,
        "normalization_schemes": ["ZScoreNormalization"],
        "use_mask_for_norm": [False],
        "resampling_fn_data": "resample_data_or_seg_to_shape",
        "resampling_fn_seg": "resample_data_or_seg_to_shape",
        "resampling_fn_data_kwargs": {
            "is_seg": False,
            "order": 3,
            "order_z": 0,
            "force_separate_z": None,
        },
        "resampling_fn_seg_kwargs": {
            "is_seg": True,
            "order": 1,
            "order_z": 0,
            "force_separate_z": None,
        },
        "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
        "resampling_fn_probabilities_kwargs": {
            "is_seg": False,
            "order": 1,
            "order_z": 0,
            "force_separate_z": None,
        },
        "architecture": {
            "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
            "arch_kwargs": {
                "n_stages": 3,
                "features_per_stage": [8, 16, 32],
                "conv_op": "torch.nn.modules.conv.Conv3d",
                "kernel_sizes": [[3, 3, 3]] * 3,
                "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2]],
                "n_conv_per_stage": [1, 1, 1],
                "n_conv_per_stage_decoder": [1, 1],
                "conv_bias": True,
                "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
                "norm_op_kwargs": {"eps": 1e-05, "affine": True},
                "dropout_op": None,
                "dropout_op_kwargs": None,
                "nonlin": "torch.nn.LeakyReLU",
                "nonlin_kwargs": {"inplace": True},
            },
            "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
        },
        "batch_dice": False,
    }


def make_model(folder: Path, shape: tuple[int, int, int], seed: int, spacing: float = 1.0) -> Path:
    """Write plans.json, dataset.json and a random-weight fold_0/checkpoint_final.pth."""
    import torch
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    plans = {
        "dataset_name": "Dataset900_BenchPredict",
        "plans_name": folder.name.split("__")[1],
        "original_median_spacing_after_transp": [1.0, 1.0, 1.0],
        "original_median_shape_after_transp": list(shape),
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "configurations": {"3d_fullres": configuration(shape, spacing)},
        "experiment_planner_used": "ExperimentPlanner",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {
            "0": {
                "max": 4.0,
                "mean": 1.5,
                "median": 1.5,
                "min": -1.0,
                "percentile_00_5": -0.5,
                "percentile_99_5": 3.5,
                "std": 1.0,
            }
        },
    }
    dataset = {
        "channel_names": {"0": "MRI"},
        "labels": LABELS,
        "numTraining": 0,
        "file_ending": ".nii.gz",
    }
    (folder / "fold_0").mkdir(parents=True, exist_ok=True)
    (folder / "plans.json").write_text(json.dumps(plans, indent=1))
    (folder / "dataset.json").write_text(json.dumps(dataset, indent=1))
    cm = PlansManager(plans).get_configuration("3d_fullres")
    torch.manual_seed(seed)
    network = get_network_from_plans(
        cm.network_arch_class_name,
        cm.network_arch_init_kwargs,
        cm.network_arch_init_kwargs_req_import,
        1,
        len(LABELS),
        allow_init=True,
        deep_supervision=False,
    )
    with torch.no_grad():  # confident outputs, like a trained model's
        for name, parameter in network.named_parameters():
            if "seg_layers" in name:
                parameter.mul_(8.0)
    checkpoint = {
        "network_weights": network.state_dict(),
        "trainer_name": "nnUNetTrainer",
        "init_args": {
            "plans": plans,
            "configuration": "3d_fullres",
            "fold": 0,
            "dataset_json": dataset,
        },
        "inference_allowed_mirroring_axes": (0, 1, 2),
    }
    torch.save(checkpoint, folder / "fold_0" / "checkpoint_final.pth")
    return folder


def make_data(size: str, cases: int) -> tuple[Path, list[Path]]:
    """Images and two model folders (cached)."""
    import SimpleITK as sitk  # noqa: N813

    from nnunet_ext.synthetic import make_case

    shape = SIZES[size]
    root = DATA / f"{size}_{cases}_v2"
    images = root / "images"
    models = [
        root / "results" / "Dataset900_BenchPredict" / f"nnUNetTrainer__{p}__3d_fullres"
        for p in ("nnUNetPlans", "nnUNetPlansB", "nnUNetPlansCoarse")
    ]
    if (root / "done").is_file():
        return images, models
    shutil.rmtree(root, ignore_errors=True)
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(cases):
        image, _ = make_case(rng, shape=shape)
        itk = sitk.GetImageFromArray(image)
        sitk.WriteImage(itk, str(images / f"case_{index:03d}_0000.nii.gz"), True)
    for seed, folder in enumerate(models):
        make_model(
            folder, shape, seed, 2.0 if folder.name.split("__")[1].endswith("Coarse") else 1.0
        )
    (root / "done").write_text("ok")
    return images, models


def tree_pss(pid: int) -> int:
    """Sum of the PSS (bytes) of ``pid`` and all its descendants.

    PSS splits shared pages (torch's libraries, loaded by every worker) among the processes
    sharing them, so the sum is the tree's real footprint; a sum of RSS counts them once per
    process.
    """
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        stack.extend(children.get(current, []))
        try:
            with open(f"/proc/{current}/smaps_rollup") as handle:
                for line in handle:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def run_measured(command: list[str], env: dict[str, str]) -> tuple[float, int, float]:
    """Run ``command``; return wall seconds, peak process-tree PSS in bytes and CPU seconds.

    CPU seconds (user + system of the command and every descendant it waited for) do not depend
    on how many other jobs share the machine; wall time does.
    """
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, tree_pss(process.pid))
            stop.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = process.communicate()
    wall = time.perf_counter() - start
    stop.set()
    sampler.join()
    if process.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({process.returncode}):\n{err[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, peak, cpu


def folder_bytes(folder: Path, suffixes: tuple[str, ...] | None = None) -> int:
    return sum(
        p.stat().st_size
        for p in folder.rglob("*")
        if p.is_file() and (suffixes is None or p.name.endswith(suffixes))
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="32x112x112 images")
    parser.add_argument("--cases", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--tta", action="store_true", help="mirroring TTA on for both routes")
    parser.add_argument("--executor", choices=("local", "ray"), default="local")
    parser.add_argument("--ray-address", default=None, help="a running Ray cluster (auto)")
    parser.add_argument("--ray-cpus-per-worker", type=int, default=1)
    parser.add_argument(
        "--scenario", choices=("two_members", "one_member", "export_heavy"), default="two_members"
    )
    parser.add_argument("--workers", type=int, default=1, help="also run predict -j N")
    args = parser.parse_args()
    ray_flags = ["--executor", "ray", "--ray-cpus-per-worker", str(args.ray_cpus_per_worker)]
    if args.ray_address:
        ray_flags += ["--ray-address", args.ray_address]
    routes = ["two_step", "ours"] + (["ours_ray"] if args.executor == "ray" else [])
    if args.scenario == "export_heavy":
        routes = ["ours"]
    piped = f"ours_j{args.workers}"
    if args.workers > 1:
        routes.append(piped)
    size = "small" if args.small else "full"
    images, models = make_data(size, args.cases)
    work = DATA / "runs"
    env = {
        **os.environ,
        "nnUNet_raw": str(DATA / "nnUNet_raw"),
        "nnUNet_preprocessed": str(DATA / "nnUNet_preprocessed"),
        "nnUNet_results": str(models[0].parent.parent),
    }
    chosen = {"two_members": models[:2], "one_member": models[:1], "export_heavy": models[2:]}
    models = chosen[args.scenario]
    spec = DATA / "spec.json"
    spec.write_text(
        json.dumps({"schema_version": 1, "members": [{"model": str(m)} for m in models]})
    )
    save = [] if args.scenario == "one_member" else ["--save_probabilities"]
    exporters = str(max(1, args.workers - 1))
    tta_nnunet = [] if args.tta else ["--disable_tta"]
    tta_ours = [] if args.tta else ["--disable-tta"]
    results: dict[str, dict[str, list[float]]] = {
        name: {"wall": [], "cpu": [], "peak": [], "intermediate": [], "npz": [], "final": []}
        for name in routes
    }
    for repeat in range(args.repeats):
        order = routes if repeat % 2 == 0 else routes[::-1]
        for name in order:
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
            if name == "two_step":
                wall, peak, cpu = 0.0, 0, 0.0
                members = []
                for index, model in enumerate(models):
                    out = work / f"member_{index}"
                    # nnU-Net's own command as a user types it (the tests spell it out too)
                    w, p, c = run_measured(
                        [
                            str(BIN / "nnUNetv2_predict_from_modelfolder"),
                            *("-i", str(images), "-o", str(out), "-m", str(model), "-f", "0"),
                            *save,
                            *("-device", "cpu", "-npp", "1", "-nps", exporters),
                            *tta_nnunet,
                        ],
                        env,
                    )
                    wall, peak, cpu = wall + w, max(peak, p), cpu + c
                    members.append(out)
                if len(members) == 1:
                    shutil.copytree(members[0], work / "labels")
                else:
                    w, p, c = run_measured(
                        [
                            *(str(BIN / "nnUNetv2_ensemble"), "-i", *map(str, members)),
                            *("-o", str(work / "labels"), "-np", "1"),
                        ],
                        env,
                    )
                    wall, peak, cpu = wall + w, max(peak, p), cpu + c
                intermediate = sum(folder_bytes(m) for m in members)
                npz = sum(folder_bytes(m, (".npz",)) for m in members)
            else:
                wall, peak, cpu = run_measured(
                    [
                        str(BIN / "python"),
                        "-m",
                        "nnunet_ext",
                        "predict",
                        "-i",
                        str(images),
                        "-o",
                        str(work / "labels"),
                        "--spec",
                        str(spec),
                        "--device",
                        "cpu",
                        *tta_ours,
                        *(ray_flags if name == "ours_ray" else []),
                        *(["-j", str(args.workers)] if name == piped else []),
                    ],
                    env,
                )
                written = {p.name for p in work.rglob("*") if p.is_file()}
                intermediate = npz = folder_bytes(work) - folder_bytes(work / "labels")
                assert not any(n.endswith(".npz") for n in written), written
            final = folder_bytes(work / "labels", (".nii.gz",))
            for key, value in (
                ("wall", wall),
                ("cpu", cpu),
                ("peak", peak),
                ("intermediate", intermediate),
                ("npz", npz),
                ("final", final),
            ):
                results[name][key].append(float(value))
            print(
                f"{name:8s} wall {wall:7.2f} s  cpu {cpu:7.2f} s  "
                f"peak tree PSS {peak / 2**20:7.1f} MiB  "
                f"intermediate {intermediate / 2**20:8.1f} MiB",
                file=sys.stderr,
            )
            shutil.copytree(work / "labels", DATA / f"labels_{name}", dirs_exist_ok=True)
    # identical labels
    import SimpleITK as sitk  # noqa: N813

    for case in sorted((DATA / f"labels_{routes[0]}").glob("*.nii.gz")):
        theirs = sitk.GetArrayFromImage(sitk.ReadImage(str(case)))
        for name in routes[1:]:
            mine = sitk.GetArrayFromImage(sitk.ReadImage(str(DATA / f"labels_{name}" / case.name)))
            if not np.array_equal(mine, theirs):
                print(f"LABELS DIFFER for {case.name} ({name})", file=sys.stderr)
                return 1
    report = {
        "size": size,
        "cases": args.cases,
        "shape": SIZES[size],
        "members": len(models),
        "tta": args.tta,
        "repeats": args.repeats,
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg()[0],
    }
    for name, values in results.items():
        report[f"{name}_wall_s"] = statistics.median(values["wall"])
        report[f"{name}_cpu_s"] = statistics.median(values["cpu"])
        report[f"{name}_peak_tree_pss_mib"] = max(values["peak"]) / 2**20
        report[f"{name}_intermediate_mib"] = max(values["intermediate"]) / 2**20
        report[f"{name}_npz_mib"] = max(values["npz"]) / 2**20
        report[f"{name}_labels_mib"] = max(values["final"]) / 2**20
    report["scenario"] = args.scenario
    base = "ours" if args.scenario == "export_heavy" else "two_step"
    for name in routes:
        if name != base:
            report[f"{name}_wall_ratio"] = report[f"{name}_wall_s"] / report[f"{base}_wall_s"]
            report[f"{name}_cpu_ratio"] = report[f"{name}_cpu_s"] / report[f"{base}_cpu_s"]
            report[f"{name}_memory_ratio"] = (
                report[f"{name}_peak_tree_pss_mib"] / report[f"{base}_peak_tree_pss_mib"]
            )
    if "ours_ray" in results:
        report["ray_vs_local_wall_ratio"] = report["ours_ray_wall_s"] / report["ours_wall_s"]
    report["labels_identical"] = True
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
