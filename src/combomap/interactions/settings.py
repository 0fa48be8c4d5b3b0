"""The interactions group's typed settings (conf/interactions; its schema in combomap.config.interactions): what the
combination is expected to be, how the noise of observed - expected is estimated, the FDR, the class thresholds,
the outputs and, on simulated data, the planted interactions. The defaults here are the group's defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from combomap.settings import SEED, Checked, SettingsError, key_of, limits
from combomap.stacking.cv import NET_GROUPINGS

SIMPLE_EXPECTED = ("additive", "average")
LEARNED_EXPECTED = ("additive_shift", "interaction")
MODEL_EXPECTED = "model"
EXPECTED = (*SIMPLE_EXPECTED, *LEARNED_EXPECTED, MODEL_EXPECTED)
VARIANCES = ("auto", "measured", "gene_mad", "combo_mad", "moderated")
NULL_SHAPES = ("bulk", "normal")
FDR_SCOPES = ("all", "combination", "hierarchical")
ENTRY_FORMATS = ("auto", "csv", "csv.gz", "parquet")


@dataclass
class LearnedSettings(Checked):
    """The folds of the learned expectations (additive_shift, interaction): each combination is predicted by a
    model fit on the other folds' combinations only."""

    n_folds: int = field(default=5, metadata=limits(2))
    by: str = field(default="auto", metadata=limits(choices=NET_GROUPINGS))


@dataclass
class ClassSettings(Checked):
    """Thresholds of the per-combination classes (docs/interactions.md, "Classes")."""

    min_called_fraction: float = field(default=0.01, metadata=limits(0.0, 1.0))
    dominance_min: float = field(default=0.5, metadata=limits(0.0))
    suppressive_max: float = field(default=0.5, metadata=limits(0.0))


@dataclass
class PlotSettings(Checked):
    """How much the figures show."""

    enabled: bool = True
    heatmap_combos: int = field(default=40, metadata=limits(1))
    heatmap_genes: int = field(default=40, metadata=limits(1))
    scatter_combos: int = field(default=9, metadata=limits(1))


@dataclass
class PlantSettings(Checked):
    """Interactions planted into a simulated compendium (combomap.interactions.planted): the truth of each
    combination becomes exactly expected(singles) plus the planted departures, measured with the simulator's noise."""

    enabled: bool = False
    combo_fraction: float = field(default=0.5, metadata=limits(0.0, 1.0))
    gene_fraction: float = field(default=0.02, metadata=limits(0.0, 1.0))
    sizes: list[float] = field(default_factory=lambda: [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0])
    seed: int = field(default=0, metadata=SEED)

    def validate(self, prefix: str) -> None:
        if not self.sizes or any(not float(size) > 0 for size in self.sizes):
            raise SettingsError(f"{key_of(prefix, 'sizes')} must list sizes > 0 (noise SDs), got {list(self.sizes)}")


@dataclass
class InteractionSettings(Checked):
    """conf/interactions: see conf/interactions/default.yaml for what each setting does."""

    expected: str = field(default="additive", metadata=limits(choices=EXPECTED))
    model_dir: Optional[str] = None
    learned: LearnedSettings = field(default_factory=LearnedSettings)
    variance: str = field(default="auto", metadata=limits(choices=VARIANCES))
    min_combos_per_gene: int = field(default=10, metadata=limits(3))
    calibrate: bool = True
    null_shape: str = field(default="bulk", metadata=limits(choices=NULL_SHAPES))
    fdr: float = field(default=0.1, metadata=limits(0.0, 1.0, high_open=True))
    fdr_scope: str = field(default="all", metadata=limits(choices=FDR_SCOPES))
    dcor_genes: int = field(default=1000, metadata=limits(10))
    classes: ClassSettings = field(default_factory=ClassSettings)
    entries_format: str = field(default="auto", metadata=limits(choices=ENTRY_FORMATS))
    plots: PlotSettings = field(default_factory=PlotSettings)
    plant: PlantSettings = field(default_factory=PlantSettings)
    seed: int = field(default=0, metadata=SEED)

    def validate(self, prefix: str) -> None:
        if not self.fdr > 0:
            raise SettingsError(f"{key_of(prefix, 'fdr')} must be in (0, 1), got {self.fdr!r}")
        if self.expected == MODEL_EXPECTED and not self.model_dir:
            raise SettingsError(f"{key_of(prefix, 'expected')}=model needs {key_of(prefix, 'model_dir')}=DIR "
                                "(the model/ folder of a combomap-stack run)")
        if self.plant.enabled and self.expected not in SIMPLE_EXPECTED:
            raise SettingsError(f"{key_of(prefix, 'plant')} builds an exactly {'/'.join(SIMPLE_EXPECTED)} truth: "
                                f"set {key_of(prefix, 'expected')} to one of {list(SIMPLE_EXPECTED)}, "
                                f"got {self.expected!r}")
