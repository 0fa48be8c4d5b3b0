"""combomap-data: generate or convert a data set and write it in one of the supported formats.

    combomap-data data=simulated data.preset=small out=data/small format=npy
    combomap-data data=npy data.dir=IN out=OUT format=parquet     # writes OUT/dataset.parquet
    combomap-data data=tidy data.path=IN.csv out=OUT format=npy
    combomap-data data=h5ad data.path=cells.h5ad out=OUT format=npy   # single cells, pseudobulked
    combomap-data data=simulated data.preset=tiny out=OUT format=h5ad  # writes OUT/dataset.h5ad
    combomap-data export=library export.format=npy library.n_drugs=40 out=LIB    # a drug library (conf/export/)
    combomap-data export=signature export.of=disease out=Q                        # a query signature

Config: conf/data_tool.yaml; the job is combomap.jobs.data.run.
"""

from omegaconf import DictConfig

from combomap.console import command
from combomap.jobs import data


@command("combomap-data", "data_tool")
def main(cfg: DictConfig) -> None:
    data.run(cfg)


if __name__ == "__main__":
    main()
