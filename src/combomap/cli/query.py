"""combomap-query: rank library drugs and drug pairs against a query signature, as one MLflow run.

    combomap-query signature=query.csv
    combomap-query signature=query.tsv score=wtcs direction=reverse pairs.include='[drug0001]'
    combomap-query signature=query.csv pairs.model=stacked pairs.stacked_model_dir=DIR
    combomap-query signature=query.csv library=gctx library.path=level5.gctx
    combomap-query signature=query.csv score=wtcs engine=dask engine.address=tcp://host:8786

Config: conf/query.yaml; the job is combomap.jobs.query.run (its outputs are described there).
"""

from omegaconf import DictConfig

from combomap.console import command
from combomap.jobs import query


@command("combomap-query", "query")
def main(cfg: DictConfig) -> None:
    query.run(cfg)


if __name__ == "__main__":
    main()
