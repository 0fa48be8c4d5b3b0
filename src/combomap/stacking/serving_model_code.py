"""MLflow models-from-code entry of the stacked pyfunc model (logged by combomap.stacking.serving.log_pyfunc_model).

MLflow copies this file into the logged model and runs it when the model is loaded; the class lives in the
installed combomap, so loading needs combomap in the environment and unpickles nothing.
"""

import mlflow

from combomap.stacking.serving import StackedPairsModel

mlflow.models.set_model(StackedPairsModel())
