"""Ablation driver: augmentation (none, swap, flip, swap+flip) x seeds as ONE Hydra multirun of combomap-stack.

Each job is one `combomap-stack` run; it scores every stacking feature set (avg, +vars, +nets, +both) and logs
its table as the artifact ablation.csv (and the scalars `ablation/stack_<set>/<metric>`), so the grid augment x seed
covers augment x feature set x seed. Every run is tagged sweep_study=<study>, sweep_trial=<job number>;
`experiments/ablation_report.py` reads the tables back.

    python experiments/ablation.py                           # 4 augmentations x seeds 0 1 2 = 12 runs, then the report
    python experiments/ablation.py --launcher joblib         # jobs in parallel (hydra-joblib-launcher)
    python experiments/ablation.py --dry-run                 # print the command only
    python experiments/ablation.py -- stacker=lightgbm data=npy data.dir=DIR   # extra Hydra overrides after --

The equivalent command line:
    combomap-stack -m augment=none,swap,flip,swap_flip seed=0,1,2 ++sweep.study_name=ablation '++sweep.trial=${hydra:job.num}'
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

AUGMENTS = ("none", "swap", "flip", "swap_flip")
SEEDS = (0, 1, 2)
HERE = Path(__file__).resolve().parent


def stack_executable() -> list[str]:
    """The combomap-stack console script of this interpreter's environment."""
    beside = Path(sys.executable).parent / "combomap-stack"
    found = str(beside) if beside.exists() else shutil.which("combomap-stack")
    if found is None:
        raise SystemExit("combomap-stack not found: install the project (pip install -e .)")
    return [found]


def ablation_command(
    study: str = "ablation",
    augments: tuple[str, ...] | list[str] = AUGMENTS,
    seeds: tuple[int, ...] | list[int] = SEEDS,
    launcher: str | None = None,
    extra: list[str] | None = None,
) -> list[str]:
    """The multirun's argv (without the executable)."""
    command = [
        "-m",
        f"augment={','.join(augments)}",
        f"seed={','.join(str(s) for s in seeds)}",
        f"++sweep.study_name={study}",
        "++sweep.trial=${hydra:job.num}",
    ]
    if launcher:
        command.append(f"hydra/launcher={launcher}")
    return command + list(extra or [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", default="ablation", help="tag sweep_study of the runs (default: ablation)")
    parser.add_argument("--augment", nargs="+", default=list(AUGMENTS), choices=AUGMENTS)
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    parser.add_argument("--launcher", default=None, help="hydra/launcher, e.g. joblib or submitit_slurm")
    parser.add_argument("--no-report", action="store_true", help="do not run ablation_report.py afterwards")
    parser.add_argument("--dry-run", action="store_true", help="print the command and exit")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides (after --)")
    args = parser.parse_args(argv)

    command = stack_executable() + ablation_command(args.study, args.augment, args.seeds, args.launcher, args.overrides)
    print(shlex.join(command), flush=True)
    if args.dry_run:
        return 0
    status = subprocess.run(command, check=False).returncode
    if status != 0:
        print(f"combomap-stack exited with {status}; the report still reads whatever runs finished", file=sys.stderr)
    if not args.no_report:
        report = [sys.executable, str(HERE / "ablation_report.py"), "--study", args.study]
        print(shlex.join(report), flush=True)
        status = subprocess.run(report, check=False).returncode or status
    return status


if __name__ == "__main__":
    raise SystemExit(main())
