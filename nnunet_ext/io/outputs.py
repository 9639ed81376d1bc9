"""The one guard for everything a command writes: checks before work, a lock, clean failures.

Every command lists its outputs (main output, reports, figures, CSV, JSON, plots, previews,
output folders) as :class:`Output` objects and its inputs as paths, then runs its work inside
:func:`guard_outputs`:

* :func:`check_outputs` (before any work): a file output must end with its suffix, its folder
  must exist, it must not exist unless ``--overwrite`` is given, and no output may be one of the
  inputs (paths are resolved, so ``../ref/case.nii.gz`` and symlinks count) or a data file inside
  an input folder.
* One writer per output folder: a lock file (:data:`~nnunet_ext.io.locks.LOCK_NAME`) in every
  folder the command writes into. A second run refuses at once, naming the process that holds
  it; a lock left by a killed process on this host is taken over (the lock is an ``flock`` that
  the kernel releases when its process dies; see :mod:`nnunet_ext.io.locks`).
* With the lock held, temporary files left by a killed run
  (:data:`~nnunet_ext.io.atomic.TEMP_PREFIX`) are removed. On an error every temporary file of
  the run is removed, an output folder the run created that holds no finished case is removed
  again, and when finished cases remain the error says how many and how to resume or redo.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from nnunet_ext.io.atomic import TEMP_PREFIX
from nnunet_ext.io.locks import OutputLock, remove_dead_lock

__all__ = [
    "DATA_SUFFIXES",
    "Output",
    "PartialOutputError",
    "check_outputs",
    "guard_outputs",
    "remove_stale_temporaries",
    "remove_temporaries",
]

#: Files an output must never replace inside an input folder: nnU-Net data and its metadata.
DATA_SUFFIXES = (
    ".nii.gz",
    ".nii",
    ".mha",
    ".nrrd",
    ".png",
    ".tif",
    ".tiff",
    ".bmp",
    ".npz",
    ".npy",
    ".pkl",
    ".b2nd",
    ".pth",
)
#: Endings of finished case files in an output folder.
LABEL_SUFFIXES = (".nii.gz", ".nii", ".mha", ".nrrd", ".png", ".tif", ".tiff", ".bmp")
_DATA_NAMES = ("dataset.json", "plans.json", "dataset_fingerprint.json", "splits_final.json")


class PartialOutputError(ValueError):
    """A run failed after finishing some cases; the message says how to resume or redo."""


@dataclass(frozen=True)
class Output:
    """One path a command writes.

    Attributes:
        path: The file or folder.
        flag: The option that names it (``"-o/--output"``, ``"--report"``), for messages.
        suffixes: Allowed file endings (case-insensitive); empty for a folder.
        folder: ``True`` for an output folder (created by the guard, may exist: reruns resume).
        cases: For a folder: whether it holds case files (label files, counted as finished
            cases when a run fails; temporary files are hidden and never counted).
        exists_ok: For a folder: whether an existing one is fine (reruns resume); if not, it
            is refused without ``--overwrite`` like an existing file.

    Examples:
        >>> Output(Path("out/spec.json"), "-o/--output", (".json",)).describe()
        '-o/--output out/spec.json'
    """

    path: Path
    flag: str
    suffixes: tuple[str, ...] = ()
    folder: bool = False
    cases: bool = False
    exists_ok: bool = True

    def describe(self) -> str:
        """The flag and the path, for messages."""
        return f"{self.flag} {self.path}"


def _resolve(path: Path) -> Path:
    return Path(os.path.realpath(os.path.expanduser(path)))


def _is_data_name(name: str) -> bool:
    lowered = name.lower()
    return lowered in _DATA_NAMES or lowered.endswith(DATA_SUFFIXES)


def check_outputs(
    outputs: Sequence[Output], *, inputs: Iterable[str | os.PathLike[str]], overwrite: bool
) -> None:
    """Refuse bad output paths before any work starts.

    Args:
        outputs: Everything the command will write (``None`` paths already left out).
        inputs: The command's input files and folders.
        overwrite: Whether ``--overwrite`` was given (existing files may be replaced).

    Raises:
        ValueError: A wrong suffix, an output that is an input or a data file inside an input
            folder, the same path given twice, or a file where a folder is needed (and back).
        NotADirectoryError: The folder of a file output does not exist.
        FileExistsError: A file output exists and ``overwrite`` is false.

    Examples:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / "case.nii.gz").write_bytes(b"x")
        >>> check_outputs([Output(folder / "r.json", "--report", (".json",))],
        ...               inputs=[folder], overwrite=False)
        >>> check_outputs([Output(folder / "case.nii.gz", "--report", (".json",))],
        ...               inputs=[folder], overwrite=True)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: --report must be a .json file; got '...case.nii.gz' (the name must end ...).
    """
    input_paths = [(Path(p), _resolve(Path(p))) for p in inputs]
    input_folders = [resolved for _, resolved in input_paths if resolved.is_dir()]
    seen: dict[Path, Output] = {}
    for output in outputs:
        resolved = _resolve(output.path)
        if resolved in seen:
            raise ValueError(
                f"{output.flag} and {seen[resolved].flag} name the same file "
                f"{str(output.path)!r}; give each output its own path."
            )
        seen[resolved] = output
        for given, source in input_paths:
            if resolved == source:
                raise ValueError(
                    f"{output.describe()} is one of the inputs ({str(given)!r}); inputs are never "
                    "overwritten. Choose another path."
                )
        if output.folder:
            inside = [f for f in input_folders if f in resolved.parents]
            if inside:
                raise ValueError(
                    f"{output.describe()} is inside the input folder {str(inside[0])!r}; "
                    "inputs are never written. Choose a folder outside the input folders."
                )
            _check_folder_output(output, resolved, overwrite)
        else:
            _check_file_output(output, resolved, input_folders, overwrite)


def _check_folder_output(output: Output, resolved: Path, overwrite: bool) -> None:
    if resolved.exists() and not resolved.is_dir():
        raise ValueError(
            f"{output.describe()} must be a folder; it is a file. Choose another path."
        )
    if resolved.exists() and not output.exists_ok and not overwrite:
        raise FileExistsError(
            f"{output.describe()} already exists; pass overwrite=True to replace it or "
            "choose another path."
        )


def _check_file_output(
    output: Output, resolved: Path, input_folders: Sequence[Path], overwrite: bool
) -> None:
    if output.suffixes and not output.path.name.lower().endswith(
        tuple(s.lower() for s in output.suffixes)
    ):
        allowed = " or ".join(output.suffixes)
        raise ValueError(
            f"{output.flag} must be a {allowed} file; got {str(output.path)!r} (the name "
            f"must end with {allowed})."
        )
    if resolved.is_dir():
        raise ValueError(f"{output.describe()} is a folder; give a file name.")
    inside = [f for f in input_folders if f in resolved.parents]
    if inside and _is_data_name(resolved.name):
        raise ValueError(
            f"{output.describe()} is a data file inside the input folder "
            f"{str(inside[0])!r}; inputs are never overwritten. Choose a path outside "
            "the input folders."
        )
    if not resolved.parent.is_dir():
        raise NotADirectoryError(
            f"{output.flag} folder does not exist: {str(output.path.parent)!r}. Create it first."
        )
    if resolved.exists() and not overwrite:
        raise FileExistsError(
            f"{output.describe()} already exists; pass overwrite=True to replace it or "
            "choose another path."
        )


def _finished_cases(folder: Path, cases: bool) -> int:
    if not cases or not folder.is_dir():
        return 0
    return sum(
        1
        for p in folder.iterdir()
        if not p.name.startswith(".") and p.name.lower().endswith(LABEL_SUFFIXES) and p.is_file()
    )


def _created_ancestor(folder: Path) -> Path | None:
    """The top-most ancestor of ``folder`` (itself included) that does not exist yet."""
    missing = None
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            break
        missing = candidate
    return missing


def remove_temporaries(folder: Path) -> None:
    """Remove every temporary file and folder of ours in ``folder`` (lock held)."""
    if folder.is_dir():
        remove_stale_temporaries(folder)


@contextlib.contextmanager
def guard_outputs(
    outputs: Sequence[Output | None],
    *,
    inputs: Iterable[str | os.PathLike[str] | None],
    overwrite: bool,
    command: str = "",
) -> Iterator[None]:
    """Check ``outputs``, lock their folders and clean up after a failure; see the module doc.

    Args:
        outputs: Everything the command writes; ``None`` entries (options not given) are skipped.
        inputs: The command's input files and folders; ``None`` entries are skipped.
        overwrite: Whether ``--overwrite`` was given.
        command: The command line, recorded in the lock for a second run's message.

    Raises:
        ValueError, NotADirectoryError, FileExistsError: From :func:`check_outputs`.
        OutputLockedError: Another run holds the lock of an output folder.
        PartialOutputError: The wrapped block failed after some cases were finished; the
            original error is its ``__cause__`` and its message leads this one.
    """
    wanted = [o for o in outputs if o is not None]
    check_outputs(wanted, inputs=[p for p in inputs if p is not None], overwrite=overwrite)
    created: list[Path] = []
    for output in wanted:
        if output.folder:
            top = _created_ancestor(_resolve(output.path))
            _resolve(output.path).mkdir(parents=True, exist_ok=True)
            if top is not None:
                created.append(top)
    folders = sorted(
        {_resolve(o.path) if o.folder else _resolve(o.path).parent for o in wanted}, key=str
    )
    locks: list[OutputLock] = []
    try:
        for folder in folders:
            lock = OutputLock(folder, command)
            try:
                lock.acquire()
            except FileNotFoundError:  # a failing run just removed the folder it had created
                folder.mkdir(parents=True, exist_ok=True)
                lock.acquire()
            locks.append(lock)
    except BaseException:
        # Without every lock this run owns nothing: never remove a folder here, even one it
        # seemed to create (another run may have created it at the same moment and hold it).
        for lock in reversed(locks):
            lock.release()
        raise
    try:
        for folder in folders:
            remove_temporaries(folder)
        yield
    except BaseException as err:
        for folder in folders:
            remove_temporaries(folder)
        _remove_created(created, wanted)
        done = [(o, _finished_cases(_resolve(o.path), o.cases)) for o in wanted if o.folder]
        for lock in reversed(locks):
            lock.release()
        if any(n for _, n in done) and isinstance(err, (ValueError, OSError)):
            notes = "; ".join(f"{n} case(s) are finished in {str(o.path)!r}" for o, n in done if n)
            raise PartialOutputError(
                f"{err} ({notes}: they are valid. Rerun the same command to resume, or add "
                "overwrite=True to redo them.)"
            ) from err
        raise
    else:
        for lock in reversed(locks):
            lock.release()


def _remove_created(created: Sequence[Path], outputs: Sequence[Output]) -> None:
    """Remove folders this run created that hold no finished case."""
    for top in created:
        finished = any(
            _finished_cases(_resolve(o.path), o.cases)
            for o in outputs
            if o.folder and (_resolve(o.path) == top or top in _resolve(o.path).parents)
        )
        if not finished:
            shutil.rmtree(top, ignore_errors=True)


def remove_stale_temporaries(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete temporary files (and scratch folders) left in ``folder`` by an interrupted run.

    Call it only while holding the folder's lock (:class:`nnunet_ext.io.locks.OutputLock`):
    without it, a temporary file of another run writing the same folder would be deleted.

    Args:
        folder: An output folder of ours.

    Returns:
        The paths that were removed (sorted).
    """
    remove_dead_lock(folder)  # a lock file whose holder was killed (none is held by a live run)
    removed = sorted(Path(folder).glob(f"{TEMP_PREFIX}*"))
    for stale in removed:
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
    return removed
