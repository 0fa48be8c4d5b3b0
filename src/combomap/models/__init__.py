"""The networks: the MLP ("Hopeless Model") and the latent net (torch, Lightning), their NumPy predictors and safe
files (portable, portable_latent: no torch), schedules, training and resuming."""
